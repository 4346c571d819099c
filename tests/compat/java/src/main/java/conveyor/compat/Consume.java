package conveyor.compat;

import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.common.TopicPartition;

/**
 * The consumer without a group (assign, seek, seekToBeginning and End,
 * beginning and end offsets, offsetsForTimes), then with one: commitSync of
 * chosen offsets and of its position, committed() read back, and a
 * subscribed member of the same group starting where the commits say.
 *
 * Topic {@code java-consume} has 3 partitions; record i goes to partition
 * i % 2 (partition 2 stays empty) at offset i / 2 with timestamp
 * base + 10 * i, so every answer can be computed.
 */
final class Consume {
    static final String TOPIC = "java-consume";
    static final int RECORDS = 400;
    static final String GROUP = "java-consume-group";

    private static final TopicPartition P0 = new TopicPartition(TOPIC, 0);
    private static final TopicPartition P1 = new TopicPartition(TOPIC, 1);
    private static final TopicPartition P2 = new TopicPartition(TOPIC, 2);
    private static final List<TopicPartition> ALL = List.of(P0, P1, P2);

    private Consume() {}

    static String key(int i) {
        return "k" + i;
    }

    /** The index of the record at {@code offset} of partition {@code p} (0 or 1). */
    static int index(int p, long offset) {
        return (int) offset * 2 + p;
    }

    static void run(String bootstrap) throws Exception {
        long base = System.currentTimeMillis() - 600_000L;
        try (Admin admin = Clients.admin(bootstrap)) {
            Clients.createTopic(admin, TOPIC, 3, Map.of());
        }
        try (KafkaProducer<byte[], byte[]> producer = Clients.producer(bootstrap, "lz4")) {
            for (int i = 0; i < RECORDS; i++) {
                producer.send(new ProducerRecord<>(TOPIC, i % 2, base + 10L * i, Clients.bytes(key(i)), Clients.bytes("v" + i)));
            }
            producer.flush();
        }
        Check.say("consume: %d records produced to %s partitions 0 and 1, timestamps 10 ms apart", RECORDS, TOPIC);
        withoutGroup(bootstrap, base);
        withGroup(bootstrap);
    }

    private static ConsumerRecord<byte[], byte[]> firstOf(KafkaConsumer<byte[], byte[]> consumer, TopicPartition tp) {
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (System.nanoTime() < deadline) {
            ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofMillis(200));
            List<ConsumerRecord<byte[], byte[]>> of = records.records(tp);
            if (!of.isEmpty()) {
                return of.get(0);
            }
        }
        throw new AssertionError("no record from " + tp + " within 30 s");
    }

    private static void checkRecord(ConsumerRecord<byte[], byte[]> r, int p, long offset, String what) {
        Check.equal(r.partition(), p, what + " partition");
        Check.equal(r.offset(), offset, what + " offset");
        Check.equal(Clients.string(r.key()), key(index(p, offset)), what + " key");
    }

    private static void withoutGroup(String bootstrap, long base) throws Exception {
        try (KafkaConsumer<byte[], byte[]> c = Clients.consumer(Clients.consumerProps(bootstrap, null, "java-assign"))) {
            c.assign(ALL);
            Map<TopicPartition, Long> begin = c.beginningOffsets(ALL);
            Map<TopicPartition, Long> end = c.endOffsets(ALL);
            Check.equal(begin, Map.of(P0, 0L, P1, 0L, P2, 0L), "beginningOffsets");
            Check.equal(end, Map.of(P0, 200L, P1, 200L, P2, 0L), "endOffsets");
            Check.say("consume: beginningOffsets %s, endOffsets %s", begin, end);

            c.seekToEnd(List.of(P0, P1));
            Check.equal(c.position(P0), 200L, "position of p0 after seekToEnd");
            Check.equal(c.position(P1), 200L, "position of p1 after seekToEnd");
            c.seekToBeginning(List.of(P0));
            Check.equal(c.position(P0), 0L, "position of p0 after seekToBeginning");
            checkRecord(firstOf(c, P0), 0, 0, "first record after seekToBeginning");
            Check.say("consume: seekToEnd puts p0 and p1 at 200, seekToBeginning p0 at 0 and reads k0 there");

            c.seek(P1, 137);
            checkRecord(firstOf(c, P1), 1, 137, "first record after seek(p1, 137)");
            c.seek(P0, 42);
            ConsumerRecord<byte[], byte[]> r = firstOf(c, P0);
            checkRecord(r, 0, 42, "first record after seek(p0, 42)");
            Check.equal(r.timestamp(), base + 10L * index(0, 42), "timestamp of p0@42");
            Check.say("consume: seek(p1, 137) and seek(p0, 42) read those records next");

            // Exactly a record's timestamp, one millisecond past one (the next
            // record answers), before every record, and after every record.
            long exact = base + 10L * index(0, 42);
            long between = base + 10L * index(1, 10) + 1;
            Map<TopicPartition, Long> query = new HashMap<>();
            query.put(P0, exact);
            query.put(P1, between);
            query.put(P2, base);
            Map<TopicPartition, OffsetAndTimestamp> times = c.offsetsForTimes(query);
            Check.equal(found(times.get(P0)), List.of(42L, exact), "offsetsForTimes p0 at a record's timestamp");
            Check.equal(found(times.get(P1)), List.of(11L, base + 10L * index(1, 11)),
                    "offsetsForTimes p1 1 ms past record 10");
            Check.equal(times.get(P2), null, "offsetsForTimes of the empty p2");
            Map<TopicPartition, OffsetAndTimestamp> edges = c.offsetsForTimes(Map.of(P0, base - 1_000_000L, P1, base + 10L * RECORDS));
            Check.equal(found(edges.get(P0)), List.of(0L, base), "offsetsForTimes p0 before every record");
            Check.equal(edges.get(P1), null, "offsetsForTimes p1 after every record");
            Check.say("consume: offsetsForTimes answers %s, then %s", times, edges);
        }

        // Fetch limits far below a batch: each fetch still returns at least
        // one whole batch (KIP-74), and every record comes in order.
        Properties small = Clients.consumerProps(bootstrap, null, "java-small-fetch");
        small.put(ConsumerConfig.FETCH_MAX_BYTES_CONFIG, "1024");
        small.put(ConsumerConfig.MAX_PARTITION_FETCH_BYTES_CONFIG, "512");
        try (KafkaConsumer<byte[], byte[]> c = Clients.consumer(small)) {
            c.assign(List.of(P0));
            c.seekToBeginning(List.of(P0));
            List<ConsumerRecord<byte[], byte[]>> got = Clients.pollExactly(c, 200, Duration.ofSeconds(30));
            for (int o = 0; o < 200; o++) {
                checkRecord(got.get(o), 0, o, "record " + o + " read with fetch.max.bytes=1024");
            }
        }
        Check.say("consume: fetch.max.bytes=1024 and max.partition.fetch.bytes=512 still read all 200 records of p0 in order");

        // read_committed: without transactions the last stable offset is the high watermark.
        Properties committed = Clients.consumerProps(bootstrap, null, "java-read-committed");
        committed.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        try (KafkaConsumer<byte[], byte[]> c = Clients.consumer(committed)) {
            c.assign(List.of(P1));
            Check.equal(c.endOffsets(List.of(P1)).get(P1), 200L, "read_committed end offset of p1");
            c.seekToBeginning(List.of(P1));
            List<ConsumerRecord<byte[], byte[]>> got = Clients.pollExactly(c, 200, Duration.ofSeconds(30));
            checkRecord(got.get(199), 1, 199, "last record read_committed");
        }
        Check.say("consume: a read_committed consumer sees end offset 200 on p1 and reads all of it");

        // The admin client's offset queries: the largest timestamp, and by time.
        try (Admin admin = Clients.admin(bootstrap)) {
            var result = admin.listOffsets(Map.of(P0, OffsetSpec.maxTimestamp(), P1, OffsetSpec.forTimestamp(base + 10L * index(1, 50))));
            var max = result.partitionResult(P0).get();
            Check.equal(List.of(max.offset(), max.timestamp()), List.of(199L, base + 10L * index(0, 199)),
                    "listOffsets maxTimestamp of p0");
            var at = result.partitionResult(P1).get();
            Check.equal(List.of(at.offset(), at.timestamp()), List.of(50L, base + 10L * index(1, 50)),
                    "listOffsets forTimestamp of p1's record 50");
            Check.say("consume: Admin.listOffsets maxTimestamp p0 -> 199, forTimestamp p1 -> 50");
        }
    }

    private static void withGroup(String bootstrap) throws Exception {
        long position;
        Properties committer = Clients.consumerProps(bootstrap, GROUP, "java-committer");
        // A poll returns at most 5 records, so the position committed below
        // stays short of the end and the next member has records to read.
        committer.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "5");
        try (KafkaConsumer<byte[], byte[]> c = Clients.consumer(committer)) {
            c.assign(ALL);
            Check.equal(c.committed(Set.copyOf(ALL)), nulls(), "committed() before any commit");
            c.commitSync(Map.of(P0, new OffsetAndMetadata(17, "seventeen"), P1, new OffsetAndMetadata(33)));
            Map<TopicPartition, OffsetAndMetadata> committed = c.committed(Set.copyOf(ALL));
            Check.equal(committed.get(P0), new OffsetAndMetadata(17, "seventeen"), "committed p0");
            Check.equal(committed.get(P1).offset(), 33L, "committed p1");
            Check.equal(committed.get(P1).metadata(), "", "committed p1 metadata");
            Check.equal(committed.get(P2), null, "committed p2 (never committed)");
            Check.say("consume: commitSync(p0=17 'seventeen', p1=33) read back by committed(): %s", committed);

            // commitSync() without offsets commits the position (of p0
            // alone: the others are no longer assigned).
            c.assign(List.of(P0));
            c.seek(P0, 60);
            checkRecord(firstOf(c, P0), 0, 60, "first record after seek(p0, 60)");
            position = c.position(P0);
            Check.that(position > 60 && position <= 65, "position of p0 after one poll from 60: %d", position);
            c.commitSync();
            Check.equal(c.committed(Set.of(P0)).get(P0).offset(), position, "committed p0 after commitSync()");
            Check.say("consume: commitSync() committed p0's position %d", position);
            Check.failsWith(org.apache.kafka.common.errors.OffsetMetadataTooLarge.class,
                    "committing 5000 bytes of metadata (offset.metadata.max.bytes is 4096)",
                    () -> c.commitSync(Map.of(P0, new OffsetAndMetadata(1, "m".repeat(5000)))));
            Check.equal(c.committed(Set.of(P0)).get(P0).offset(), position, "committed p0 after the refused commit");
            Check.say("consume: a commit with 5000 bytes of metadata refused (OffsetMetadataTooLarge), the last commit kept");
            c.commitSync(Map.of(P2, new OffsetAndMetadata(0)));
            Check.equal(c.committed(Set.of(P2)).get(P2).offset(), 0L, "committed p2");
        }

        // A member that subscribes resumes from the commits; with
        // auto.offset.reset=none a missing commit would be an error.
        Properties props = Clients.consumerProps(bootstrap, GROUP, "java-resumer");
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none");
        try (KafkaConsumer<byte[], byte[]> c = Clients.consumer(props)) {
            c.subscribe(List.of(TOPIC));
            Map<Integer, Long> first = new HashMap<>();
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while (first.size() < 2 && System.nanoTime() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) {
                    first.putIfAbsent(r.partition(), r.offset());
                }
            }
            Check.equal(first, Map.of(0, position, 1, 33L), "first offsets read by a subscribed member of the group");
            Check.equal(c.position(P2), 0L, "position of p2 (committed 0, empty)");
            Check.equal(c.assignment(), Set.copyOf(ALL), "assignment of the only member");
        }
        Check.say("consume: a subscribed member of %s resumed at p0=%d, p1=33", GROUP, position);
    }

    /** Offset and timestamp of an offsetsForTimes answer (the leader epoch is the broker's business). */
    private static List<Long> found(OffsetAndTimestamp t) {
        return t == null ? null : List.of(t.offset(), t.timestamp());
    }

    private static Map<TopicPartition, OffsetAndMetadata> nulls() {
        Map<TopicPartition, OffsetAndMetadata> m = new HashMap<>();
        ALL.forEach(tp -> m.put(tp, null));
        return m;
    }
}
