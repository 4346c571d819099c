package conveyor.compat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Future;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.DescribeProducersResult.PartitionProducerState;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.record.TimestampType;

/**
 * The idempotent producer with acks=all, once per codec: keyed records with
 * headers and explicit timestamps, every send's metadata checked, then every
 * record read back and compared, and the broker's producer state described.
 *
 * Topic {@code java-produce-CODEC} gets {@link #RECORDS} records; record i
 * goes to partition i % 3 and so lands at offset i / 3. The Rust test reads
 * these topics' segments afterwards to check each batch's codec and producer id.
 */
final class Produce {
    static final List<String> CODECS = List.of("none", "gzip", "snappy", "lz4", "zstd");
    static final int PARTITIONS = 3;
    static final int RECORDS = 3000;

    private Produce() {}

    static void run(String bootstrap) throws Exception {
        try (Admin admin = Clients.admin(bootstrap)) {
            for (String codec : CODECS) {
                roundTrip(admin, bootstrap, codec);
            }
            large(admin, bootstrap);
            topicCodec(admin, bootstrap);
            autoCreated(bootstrap);
            for (String acks : List.of("0", "1")) {
                plainAcks(admin, bootstrap, acks);
            }
        }
    }

    /**
     * A topic with compression.type=zstd written by an uncompressed
     * producer: read back the same (the Rust test finds zstd batches on
     * disk, still carrying the producer's id and sequences).
     */
    private static void topicCodec(Admin admin, String bootstrap) throws Exception {
        String topic = "java-produce-topic-zstd";
        Clients.createTopic(admin, topic, 1, Map.of("compression.type", "zstd"));
        long base = System.currentTimeMillis() - 60_000L;
        int count = 500;
        try (KafkaProducer<byte[], byte[]> producer = Clients.producer(bootstrap, "none")) {
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                sent.add(producer.send(new ProducerRecord<>(topic, 0, base + i, key(i), value(i), headers(i))));
            }
            producer.flush();
            for (int i = 0; i < count; i++) {
                Check.equal(sent.get(i).get().offset(), (long) i, "offset of record " + i + " in " + topic);
            }
        }
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<byte[], byte[]> consumer =
                Clients.consumer(Clients.consumerProps(bootstrap, null, "java-reader-topic-zstd"))) {
            consumer.assign(List.of(tp));
            consumer.seekToBeginning(List.of(tp));
            List<ConsumerRecord<byte[], byte[]>> got = Clients.pollExactly(consumer, count, Duration.ofSeconds(60));
            for (int i = 0; i < count; i++) {
                ConsumerRecord<byte[], byte[]> r = got.get(i);
                Check.equal(r.offset(), (long) i, topic + " record " + i + " offset");
                Check.equal(r.key(), key(i), topic + " record " + i + " key");
                Check.equal(r.value(), value(i), topic + " record " + i + " value");
                Check.equal(r.timestamp(), base + i, topic + " record " + i + " timestamp");
                Check.equal(r.headers().toArray().length, headers(i).size(), topic + " record " + i + " headers");
            }
        }
        Check.say("produce: %d uncompressed records to a compression.type=zstd topic read back the same", count);
    }

    /**
     * A non-idempotent producer with acks=0 (the broker must not answer its
     * produce requests: an answer would be taken for the next request's on
     * the connection) or acks=1, in several flushes; every record read back
     * in order.
     */
    private static void plainAcks(Admin admin, String bootstrap, String acks) throws Exception {
        String topic = "java-produce-acks-" + acks;
        Clients.createTopic(admin, topic, 1, Map.of());
        java.util.Properties p = new java.util.Properties();
        p.put(org.apache.kafka.clients.producer.ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(org.apache.kafka.clients.producer.ProducerConfig.ACKS_CONFIG, acks);
        p.put(org.apache.kafka.clients.producer.ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "false");
        p.put(org.apache.kafka.clients.producer.ProducerConfig.LINGER_MS_CONFIG, "5");
        p.put(org.apache.kafka.clients.producer.ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG,
                org.apache.kafka.common.serialization.ByteArraySerializer.class.getName());
        p.put(org.apache.kafka.clients.producer.ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG,
                org.apache.kafka.common.serialization.ByteArraySerializer.class.getName());
        int rounds = 10;
        int each = 60;
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            for (int round = 0; round < rounds; round++) {
                List<Future<RecordMetadata>> sent = new ArrayList<>();
                for (int i = round * each; i < (round + 1) * each; i++) {
                    sent.add(producer.send(new ProducerRecord<>(topic, 0, key(i), value(i))));
                }
                producer.flush();
                // Metadata between rounds shares the connection with the produce requests.
                Check.equal(producer.partitionsFor(topic).size(), 1, topic + " partitions");
                for (int k = 0; k < each; k++) {
                    long offset = sent.get(k).get().offset();
                    // acks=0 learns no offset (-1).
                    Check.equal(offset, acks.equals("0") ? -1L : (long) (round * each + k), topic + " send offset");
                }
            }
        }
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<byte[], byte[]> consumer =
                Clients.consumer(Clients.consumerProps(bootstrap, null, "java-reader-acks-" + acks))) {
            consumer.assign(List.of(tp));
            consumer.seekToBeginning(List.of(tp));
            List<ConsumerRecord<byte[], byte[]>> got = Clients.pollExactly(consumer, rounds * each, Duration.ofSeconds(60));
            for (int i = 0; i < rounds * each; i++) {
                Check.equal(got.get(i).offset(), (long) i, topic + " record " + i + " offset");
                Check.equal(got.get(i).key(), key(i), topic + " record " + i + " key");
                Check.equal(got.get(i).value(), value(i), topic + " record " + i + " value");
            }
        }
        Check.say("produce: acks=%s without idempotence: %d records in %d flushes, all read back in order",
                acks, rounds * each, rounds);
    }

    /** Sending to a topic that does not exist creates it with the broker's num.partitions (3). */
    private static void autoCreated(String bootstrap) throws Exception {
        String topic = "java-produce-auto";
        try (KafkaProducer<byte[], byte[]> producer = Clients.producer(bootstrap, "none")) {
            RecordMetadata m = producer.send(new ProducerRecord<>(topic, Clients.bytes("k"), Clients.bytes("v"))).get();
            Check.equal(m.offset(), 0L, "offset of the first record of an auto-created topic");
            Check.equal(producer.partitionsFor(topic).size(), 3, "partitions of the auto-created topic");
        }
        Check.say("produce: a send to a missing topic auto-created it with 3 partitions");
    }

    /**
     * Records of 600 KB (half the broker's message.max.bytes), uncompressed
     * and zstd-compressed: each is a batch of its own, and a fetch of the
     * consumer's default 1 MiB per partition holds one of them whole.
     */
    private static void large(Admin admin, String bootstrap) throws Exception {
        String topic = "java-produce-large";
        Clients.createTopic(admin, topic, 1, Map.of());
        java.util.Random random = new java.util.Random(42);
        List<byte[]> values = new ArrayList<>();
        long offset = 0;
        for (String codec : List.of("none", "zstd")) {
            try (KafkaProducer<byte[], byte[]> producer = Clients.producer(bootstrap, codec)) {
                for (int i = 0; i < 4; i++) {
                    byte[] value = new byte[600_000];
                    random.nextBytes(value);
                    values.add(value);
                    RecordMetadata m = producer.send(new ProducerRecord<>(topic, 0, Clients.bytes(codec + i), value)).get();
                    Check.equal(m.offset(), offset++, "offset of large record " + codec + i);
                }
            }
        }
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<byte[], byte[]> consumer =
                Clients.consumer(Clients.consumerProps(bootstrap, null, "java-reader-large"))) {
            consumer.assign(List.of(tp));
            consumer.seekToBeginning(List.of(tp));
            List<ConsumerRecord<byte[], byte[]>> got = Clients.pollExactly(consumer, values.size(), Duration.ofSeconds(60));
            for (int i = 0; i < values.size(); i++) {
                Check.equal(got.get(i).offset(), (long) i, "large record " + i + " offset");
                Check.equal(got.get(i).value(), values.get(i), "large record " + i + " value");
            }
        }
        Check.say("produce: %d records of 600 KB (none and zstd) acknowledged in order and read back byte for byte",
                values.size());
    }

    static byte[] key(int i) {
        // Every 50th record has no key.
        return i % 50 == 0 ? null : Clients.bytes("key-" + i);
    }

    static byte[] value(int i) {
        // Every 97th record is a tombstone; the rest are text of varied length.
        return i % 97 == 0 ? null : Clients.bytes("value " + i + " " + "abcdefghij".repeat(i % 40));
    }

    static List<Header> headers(int i) {
        List<Header> h = new ArrayList<>();
        h.add(new RecordHeader("idx", Clients.bytes(Integer.toString(i))));
        if (i % 3 == 0) {
            h.add(new RecordHeader("empty", new byte[0]));
        }
        if (i % 5 == 0) {
            h.add(new RecordHeader("nil", null));
        }
        if (i % 7 == 0) {
            // A repeated header name: order and both values must survive.
            h.add(new RecordHeader("idx", Clients.bytes("again")));
        }
        return h;
    }

    private static void roundTrip(Admin admin, String bootstrap, String codec) throws Exception {
        String topic = "java-produce-" + codec;
        Clients.createTopic(admin, topic, PARTITIONS, Map.of());
        // Explicit timestamps an hour back, one millisecond apart: far from
        // the broker's clock, so an overwritten timestamp shows.
        long base = System.currentTimeMillis() - 3_600_000L;

        List<Future<RecordMetadata>> sent = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> producer = Clients.producer(bootstrap, codec)) {
            for (int i = 0; i < RECORDS; i++) {
                sent.add(producer.send(new ProducerRecord<>(topic, i % PARTITIONS, base + i, key(i), value(i), headers(i))));
            }
            producer.flush();
        }
        for (int i = 0; i < RECORDS; i++) {
            RecordMetadata m = sent.get(i).get();
            String what = codec + " send " + i;
            Check.equal(m.topic(), topic, what + " topic");
            Check.equal(m.partition(), i % PARTITIONS, what + " partition");
            Check.equal(m.offset(), (long) (i / PARTITIONS), what + " offset");
            Check.equal(m.timestamp(), base + i, what + " timestamp");
            Check.equal(m.serializedKeySize(), key(i) == null ? -1 : key(i).length, what + " key size");
        }
        Check.say("produce %s: %d sends acknowledged (acks=all, idempotent), each at partition i%%3, offset i/3, its own timestamp",
                codec, RECORDS);

        // The broker's idempotence state: one producer per partition, its
        // last sequence the partition's last record.
        List<TopicPartition> partitions = new ArrayList<>();
        for (int p = 0; p < PARTITIONS; p++) {
            partitions.add(new TopicPartition(topic, p));
        }
        Map<TopicPartition, PartitionProducerState> states = admin.describeProducers(partitions).all().get();
        long producerId = -1;
        for (TopicPartition tp : partitions) {
            List<ProducerState> active = states.get(tp).activeProducers();
            Check.equal(active.size(), 1, codec + " " + tp + " active producers " + active);
            ProducerState s = active.get(0);
            Check.that(s.producerId() >= 0, "%s %s: producer id %d", codec, tp, s.producerId());
            Check.that(producerId == -1 || producerId == s.producerId(),
                    "%s %s: producer id %d, other partitions %d", codec, tp, s.producerId(), producerId);
            producerId = s.producerId();
            Check.equal(s.lastSequence(), RECORDS / PARTITIONS - 1, codec + " " + tp + " last sequence");
            int last = RECORDS - PARTITIONS + tp.partition();
            Check.equal(s.lastTimestamp(), base + last, codec + " " + tp + " last timestamp");
        }
        Check.say("produce %s: DescribeProducers shows producer %d on every partition, last sequence %d",
                codec, producerId, RECORDS / PARTITIONS - 1);

        try (KafkaConsumer<byte[], byte[]> consumer =
                Clients.consumer(Clients.consumerProps(bootstrap, null, "java-reader-" + codec))) {
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            Map<TopicPartition, Long> ends = consumer.endOffsets(partitions);
            for (TopicPartition tp : partitions) {
                Check.equal(ends.get(tp), (long) (RECORDS / PARTITIONS), codec + " end offset of " + tp);
            }
            boolean[] seen = new boolean[RECORDS];
            for (ConsumerRecord<byte[], byte[]> r : Clients.pollExactly(consumer, RECORDS, Duration.ofSeconds(60))) {
                int i = (int) r.offset() * PARTITIONS + r.partition();
                String what = codec + " record " + r.partition() + "@" + r.offset();
                Check.that(i < RECORDS && !seen[i], "%s: unexpected or repeated", what);
                seen[i] = true;
                Check.equal(r.key(), key(i), what + " key");
                Check.equal(r.value(), value(i), what + " value");
                Check.equal(r.timestamp(), base + i, what + " timestamp");
                Check.equal(r.timestampType(), TimestampType.CREATE_TIME, what + " timestamp type");
                List<Header> got = List.of(r.headers().toArray());
                List<Header> want = headers(i);
                Check.equal(got.size(), want.size(), what + " header count " + got);
                for (int h = 0; h < want.size(); h++) {
                    Check.equal(got.get(h).key(), want.get(h).key(), what + " header " + h + " key");
                    Check.equal(got.get(h).value(), want.get(h).value(), what + " header " + h + " value");
                }
            }
        }
        Check.say("produce %s: all %d records read back with the same keys, values, headers and timestamps",
                codec, RECORDS);
    }
}
