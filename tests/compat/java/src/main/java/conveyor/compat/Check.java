package conveyor.compat;

import java.time.Duration;
import java.util.Arrays;
import java.util.Objects;
import java.util.concurrent.ExecutionException;
import java.util.function.BooleanSupplier;

/** Checks that throw with what was expected and what came back. */
final class Check {
    private Check() {}

    /** One line of what was checked, flushed at once so a hang shows how far it got. */
    static void say(String format, Object... args) {
        System.out.println(String.format(format, args));
        System.out.flush();
    }

    static void that(boolean ok, String format, Object... args) {
        if (!ok) {
            throw new AssertionError(String.format(format, args));
        }
    }

    static void equal(Object got, Object want, String what) {
        boolean same = got instanceof byte[] g && want instanceof byte[] w
                ? Arrays.equals(g, w)
                : Objects.equals(got, want);
        if (!same) {
            throw new AssertionError(what + ": got " + show(got) + ", want " + show(want));
        }
    }

    static String show(Object value) {
        return value instanceof byte[] b ? "bytes" + Arrays.toString(b) : String.valueOf(value);
    }

    /** Polls {@code condition} every 50 ms until it holds; fails after {@code limit}. */
    static void eventually(Duration limit, String what, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + limit.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("not within " + limit + ": " + what);
            }
            Thread.sleep(50);
        }
    }

    /** Runs {@code call} and returns the cause it failed with, failing if it succeeded. */
    static Throwable failure(String what, Call call) {
        try {
            call.run();
        } catch (ExecutionException e) {
            return e.getCause();
        } catch (Exception e) {
            return e;
        }
        throw new AssertionError(what + ": succeeded, but should have failed");
    }

    /** That {@code call} fails with an exception of class {@code want}. */
    static void failsWith(Class<? extends Throwable> want, String what, Call call) {
        Throwable got = failure(what, call);
        if (!want.isInstance(got)) {
            throw new AssertionError(what + ": failed with " + got + ", want " + want.getSimpleName(), got);
        }
    }

    @FunctionalInterface
    interface Call {
        void run() throws Exception;
    }
}
