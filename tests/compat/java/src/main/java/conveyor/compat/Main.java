package conveyor.compat;

import java.util.Arrays;
import java.util.List;

/**
 * Apache Kafka's Java client against a Conveyor broker.
 *
 * <pre>java conveyor.compat.Main PART --bootstrap HOST:PORT</pre>
 *
 * PART is one of {@code produce}, {@code consume}, {@code group} or
 * {@code admin}. Each prints a line per thing it checked and {@code OK} at
 * the end; the first check that fails throws, prints why and exits 1.
 */
public final class Main {
    private static final List<String> PARTS = List.of("produce", "consume", "group", "admin");

    private Main() {}

    public static void main(String[] args) {
        if (args.length != 3 || !args[1].equals("--bootstrap") || !PARTS.contains(args[0])) {
            System.err.println("usage: Main " + String.join("|", PARTS) + " --bootstrap HOST:PORT"
                    + " (got " + Arrays.toString(args) + ")");
            System.exit(2);
        }
        String part = args[0];
        String bootstrap = args[1 + 1];
        try {
            switch (part) {
                case "produce" -> Produce.run(bootstrap);
                case "consume" -> Consume.run(bootstrap);
                case "group" -> Group.run(bootstrap);
                case "admin" -> AdminChecks.run(bootstrap);
                default -> throw new IllegalStateException(part);
            }
        } catch (Throwable e) {
            System.out.flush();
            System.err.println("FAILED in " + part + ":");
            e.printStackTrace();
            System.err.flush();
            // halt, not exit: a client thread stuck in a shutdown hook must
            // not keep a failed run alive.
            Runtime.getRuntime().halt(1);
        }
        System.out.println("OK");
        System.out.flush();
        Runtime.getRuntime().halt(0);
    }
}
