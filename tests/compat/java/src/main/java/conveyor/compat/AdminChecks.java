package conveyor.compat;

import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.AlterConfigsOptions;
import org.apache.kafka.clients.admin.ClassicGroupDescription;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConfigEntry.ConfigSource;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.CreateTopicsOptions;
import org.apache.kafka.clients.admin.CreateTopicsResult;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListTopicsOptions;
import org.apache.kafka.clients.admin.LogDirDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.ReplicaInfo;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.ClassicGroupState;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicCollection;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.apache.kafka.common.errors.InvalidPartitionsException;
import org.apache.kafka.common.errors.InvalidReplicaAssignmentException;
import org.apache.kafka.common.errors.InvalidReplicationFactorException;
import org.apache.kafka.common.errors.OffsetOutOfRangeException;
import org.apache.kafka.common.errors.RecordTooLargeException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicIdException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;

/**
 * Admin against the one-node broker: the cluster; topics created (with
 * configs), listed, described by name and by id, and deleted; a topic's
 * configs described, altered incrementally and described back; partitions
 * added; records deleted with the low watermark following; a group listed,
 * described and its offsets listed, altered and deleted, then the group
 * deleted; topics deleted by name and by id. Each answer's values are
 * checked, and the errors Kafka gives for requests it refuses.
 */
final class AdminChecks {
    static final String CONFIGURED = "java-admin-configured";
    static final String PLAIN = "java-admin-plain";
    static final String GROUP = "java-admin-group";

    private AdminChecks() {}

    static void run(String bootstrap) throws Exception {
        try (Admin admin = Clients.admin(bootstrap)) {
            cluster(admin, bootstrap);
            Uuid id = topics(admin);
            configs(admin, bootstrap);
            brokerConfigs(admin);
            logDirs(admin);
            partitions(admin);
            records(admin, bootstrap);
            groups(admin, bootstrap);
            deletion(admin, id);
        }
    }

    private static void cluster(Admin admin, String bootstrap) throws Exception {
        DescribeClusterResult c = admin.describeCluster();
        Collection<Node> nodes = c.nodes().get();
        int port = Integer.parseInt(bootstrap.substring(bootstrap.lastIndexOf(':') + 1));
        Check.equal(nodes.size(), 1, "describeCluster nodes " + nodes);
        Node node = nodes.iterator().next();
        Check.equal(node.id(), 0, "node id");
        Check.equal(node.host(), "127.0.0.1", "node host");
        Check.equal(node.port(), port, "node port");
        Check.equal(c.controller().get().id(), 0, "controller id");
        String clusterId = c.clusterId().get();
        Check.that(clusterId != null && !clusterId.isEmpty(), "cluster id %s", clusterId);
        Check.say("admin: describeCluster: node %s, controller 0, cluster id %s", node, clusterId);
    }

    private static Uuid topics(Admin admin) throws Exception {
        NewTopic configured = new NewTopic(CONFIGURED, 4, (short) 1)
                .configs(Map.of("retention.ms", "3600000", "cleanup.policy", "compact"));
        NewTopic plain = new NewTopic(PLAIN, 1, (short) 1);
        CreateTopicsResult created = admin.createTopics(List.of(configured, plain));
        created.all().get();
        Uuid id = created.topicId(CONFIGURED).get();
        Check.that(id != null && !id.equals(Uuid.ZERO_UUID), "created topic id %s", id);
        Check.equal(created.numPartitions(CONFIGURED).get(), 4, "created partitions");
        Check.equal(created.replicationFactor(CONFIGURED).get(), 1, "created replication factor");
        ConfigEntry retention = created.config(CONFIGURED).get().get("retention.ms");
        Check.equal(retention.value(), "3600000", "created retention.ms");
        Check.equal(retention.source(), ConfigSource.DYNAMIC_TOPIC_CONFIG, "created retention.ms source");
        Check.say("admin: createTopics %s (4 partitions, id %s, retention.ms=3600000 from the topic) and %s",
                CONFIGURED, id, PLAIN);

        Check.failsWith(TopicExistsException.class, "creating " + PLAIN + " again",
                () -> admin.createTopics(List.of(new NewTopic(PLAIN, 1, (short) 1))).all().get());
        Check.failsWith(InvalidReplicationFactorException.class, "replication factor 3 on one broker",
                () -> admin.createTopics(List.of(new NewTopic("java-admin-rf3", 1, (short) 3))).all().get());
        admin.createTopics(List.of(new NewTopic("java-admin-validate", 2, (short) 1)),
                new CreateTopicsOptions().validateOnly(true)).all().get();
        // Replicas assigned by hand: broker 0 only.
        admin.createTopics(List.of(new NewTopic("java-admin-assigned", Map.of(0, List.of(0), 1, List.of(0))))).all().get();
        Check.equal(admin.describeTopics(List.of("java-admin-assigned")).allTopicNames().get()
                .get("java-admin-assigned").partitions().size(), 2, "partitions of a topic created with assignments");
        Check.failsWith(InvalidReplicaAssignmentException.class, "an assignment naming broker 1",
                () -> admin.createTopics(List.of(new NewTopic("java-admin-misassigned", Map.of(0, List.of(1))))).all().get());
        Set<String> names = admin.listTopics().names().get();
        Check.that(names.containsAll(Set.of(CONFIGURED, PLAIN)), "listTopics %s", names);
        Check.that(!names.contains("java-admin-validate") && !names.contains("java-admin-rf3")
                && !names.contains("java-admin-misassigned"),
                "listTopics shows a topic that was only validated or refused: %s", names);
        Check.that(names.stream().noneMatch(n -> n.startsWith("__")), "listTopics shows internal topics: %s", names);
        Check.say("admin: replica assignments on broker 0 accepted, on broker 1 refused; TopicExists and InvalidReplicationFactor refused, validateOnly created nothing; listTopics %s", names);

        Map<String, TopicDescription> described = admin.describeTopics(List.of(CONFIGURED, PLAIN)).allTopicNames().get();
        TopicDescription d = described.get(CONFIGURED);
        Check.equal(d.name(), CONFIGURED, "described name");
        Check.equal(d.topicId(), id, "described topic id");
        Check.equal(d.isInternal(), false, "described internal");
        Check.equal(d.partitions().size(), 4, "described partitions");
        for (int p = 0; p < 4; p++) {
            TopicPartitionInfo info = d.partitions().get(p);
            Check.equal(info.partition(), p, "partition index");
            Check.equal(info.leader().id(), 0, "leader of " + p);
            Check.equal(info.replicas().stream().map(Node::id).toList(), List.of(0), "replicas of " + p);
            Check.equal(info.isr().stream().map(Node::id).toList(), List.of(0), "isr of " + p);
        }
        Check.equal(described.get(PLAIN).partitions().size(), 1, "partitions of " + PLAIN);
        Map<Uuid, TopicDescription> byId = admin.describeTopics(TopicCollection.ofTopicIds(List.of(id))).allTopicIds().get();
        Check.equal(byId.get(id).name(), CONFIGURED, "topic described by id");
        Check.failsWith(UnknownTopicOrPartitionException.class, "describing a topic that does not exist",
                () -> admin.describeTopics(List.of("java-admin-missing")).allTopicNames().get());
        Check.say("admin: describeTopics by name and by id: 4 partitions, leader, replicas and isr node 0; unknown topic refused");
        return id;
    }

    private static Map<String, ConfigEntry> topicConfig(Admin admin, String topic) throws Exception {
        ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        Config config = admin.describeConfigs(List.of(r)).all().get().get(r);
        Map<String, ConfigEntry> entries = new java.util.HashMap<>();
        config.entries().forEach(e -> entries.put(e.name(), e));
        return entries;
    }

    private static void checkEntry(Map<String, ConfigEntry> c, String name, String value, ConfigSource source) {
        ConfigEntry e = c.get(name);
        Check.that(e != null, "describeConfigs has no %s", name);
        Check.equal(e.value(), value, name + " value");
        Check.equal(e.source(), source, name + " source");
        Check.equal(e.isDefault(), source == ConfigSource.DEFAULT_CONFIG, name + " isDefault");
    }

    private static void configs(Admin admin, String bootstrap) throws Exception {
        Map<String, ConfigEntry> c = topicConfig(admin, CONFIGURED);
        checkEntry(c, "retention.ms", "3600000", ConfigSource.DYNAMIC_TOPIC_CONFIG);
        checkEntry(c, "cleanup.policy", "compact", ConfigSource.DYNAMIC_TOPIC_CONFIG);
        checkEntry(c, "max.message.bytes", "1048588", ConfigSource.DEFAULT_CONFIG);
        checkEntry(c, "min.insync.replicas", "1", ConfigSource.DEFAULT_CONFIG);
        Check.that(c.size() > 20, "describeConfigs answered only %d topic settings", c.size());
        Check.say("admin: describeConfigs of %s: %d settings, retention.ms and cleanup.policy from the topic, the rest defaults",
                CONFIGURED, c.size());

        ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, CONFIGURED);
        admin.incrementalAlterConfigs(Map.of(r, List.of(
                new AlterConfigOp(new ConfigEntry("retention.ms", "7200000"), AlterConfigOp.OpType.SET),
                new AlterConfigOp(new ConfigEntry("max.message.bytes", "65536"), AlterConfigOp.OpType.SET),
                new AlterConfigOp(new ConfigEntry("cleanup.policy", "delete"), AlterConfigOp.OpType.APPEND)))).all().get();
        c = topicConfig(admin, CONFIGURED);
        checkEntry(c, "retention.ms", "7200000", ConfigSource.DYNAMIC_TOPIC_CONFIG);
        checkEntry(c, "max.message.bytes", "65536", ConfigSource.DYNAMIC_TOPIC_CONFIG);
        checkEntry(c, "cleanup.policy", "compact,delete", ConfigSource.DYNAMIC_TOPIC_CONFIG);
        Check.say("admin: incrementalAlterConfigs SET retention.ms, SET max.message.bytes, APPEND cleanup.policy: described back");
        enforced(bootstrap);

        admin.incrementalAlterConfigs(Map.of(r, List.of(
                new AlterConfigOp(new ConfigEntry("max.message.bytes", ""), AlterConfigOp.OpType.DELETE),
                new AlterConfigOp(new ConfigEntry("cleanup.policy", "compact"), AlterConfigOp.OpType.SUBTRACT)))).all().get();
        c = topicConfig(admin, CONFIGURED);
        checkEntry(c, "max.message.bytes", "1048588", ConfigSource.DEFAULT_CONFIG);
        checkEntry(c, "cleanup.policy", "delete", ConfigSource.DYNAMIC_TOPIC_CONFIG);
        checkEntry(c, "retention.ms", "7200000", ConfigSource.DYNAMIC_TOPIC_CONFIG);

        admin.incrementalAlterConfigs(Map.of(r, List.of(
                new AlterConfigOp(new ConfigEntry("retention.ms", "1"), AlterConfigOp.OpType.SET))),
                new AlterConfigsOptions().validateOnly(true)).all().get();
        Check.failsWith(InvalidConfigurationException.class, "retention.ms=soon",
                () -> admin.incrementalAlterConfigs(Map.of(r, List.of(new AlterConfigOp(
                        new ConfigEntry("retention.ms", "soon"), AlterConfigOp.OpType.SET)))).all().get());
        Check.failsWith(InvalidConfigurationException.class, "a setting Kafka does not have",
                () -> admin.incrementalAlterConfigs(Map.of(r, List.of(new AlterConfigOp(
                        new ConfigEntry("no.such.setting", "1"), AlterConfigOp.OpType.SET)))).all().get());
        checkEntry(topicConfig(admin, CONFIGURED), "retention.ms", "7200000", ConfigSource.DYNAMIC_TOPIC_CONFIG);
        Check.say("admin: DELETE back to the default, SUBTRACT from a list; validateOnly, a bad value and an unknown key changed nothing");
    }

    /** The altered max.message.bytes is in force: a larger record is refused by the broker, a smaller one kept. */
    private static void enforced(String bootstrap) throws Exception {
        try (KafkaProducer<byte[], byte[]> producer = Clients.producer(bootstrap, "none")) {
            // Keyed: the topic is compacted.
            Check.failsWith(RecordTooLargeException.class, "a 100 KB record where max.message.bytes is 65536",
                    () -> producer.send(new ProducerRecord<>(CONFIGURED, 0, Clients.bytes("big"), new byte[100_000])).get());
            RecordMetadata small = producer.send(new ProducerRecord<>(CONFIGURED, 0, Clients.bytes("small"), new byte[1000])).get();
            Check.equal(small.offset(), 0L, "offset of the record that fits");
        }
        Check.say("admin: with max.message.bytes=65536 the broker refuses a 100 KB record (RecordTooLarge) and keeps a 1 KB one");
    }

    /** This broker's settings: one the test broker was started with, one left at Kafka's default. */
    private static void brokerConfigs(Admin admin) throws Exception {
        ConfigResource r = new ConfigResource(ConfigResource.Type.BROKER, "0");
        Config config = admin.describeConfigs(List.of(r)).all().get().get(r);
        ConfigEntry partitions = config.get("num.partitions");
        Check.that(partitions != null, "broker configs lack num.partitions: %s", config);
        Check.equal(partitions.value(), "3", "broker num.partitions");
        Check.equal(partitions.source(), ConfigSource.STATIC_BROKER_CONFIG, "broker num.partitions source");
        ConfigEntry maxBytes = config.get("message.max.bytes");
        Check.that(maxBytes != null, "broker configs lack message.max.bytes: %s", config);
        Check.equal(maxBytes.value(), "1048588", "broker message.max.bytes");
        Check.equal(maxBytes.source(), ConfigSource.DEFAULT_CONFIG, "broker message.max.bytes source");
        Check.say("admin: describeConfigs of broker 0: num.partitions=3 from its configuration, message.max.bytes=1048588 Kafka's default");
    }

    /** DescribeLogDirs: one directory holding every partition of the topics, the written one not empty. */
    private static void logDirs(Admin admin) throws Exception {
        Map<Integer, Map<String, LogDirDescription>> all = admin.describeLogDirs(List.of(0)).allDescriptions().get();
        Check.equal(all.keySet(), Set.of(0), "brokers with log dirs");
        Map<String, LogDirDescription> dirs = all.get(0);
        Check.equal(dirs.size(), 1, "log dirs of broker 0 " + dirs.keySet());
        LogDirDescription dir = dirs.values().iterator().next();
        Check.equal(dir.error(), null, "log dir error");
        Map<TopicPartition, ReplicaInfo> replicas = dir.replicaInfos();
        for (int p = 0; p < 4; p++) {
            Check.that(replicas.containsKey(new TopicPartition(CONFIGURED, p)), "log dir lacks %s-%d: %s", CONFIGURED, p,
                    replicas.keySet());
        }
        long size = replicas.get(new TopicPartition(CONFIGURED, 0)).size();
        Check.that(size > 1000, "size of %s-0, which holds a 1 KB record: %d", CONFIGURED, size);
        Check.equal(replicas.get(new TopicPartition(CONFIGURED, 1)).size(), 0L, "size of the empty " + CONFIGURED + "-1");
        Check.say("admin: describeLogDirs: one directory %s, %s-0 %d bytes, the empty partitions 0",
                dirs.keySet().iterator().next(), CONFIGURED, size);
    }

    private static void partitions(Admin admin) throws Exception {
        admin.createPartitions(Map.of(PLAIN, NewPartitions.increaseTo(3))).all().get();
        TopicDescription d = admin.describeTopics(List.of(PLAIN)).allTopicNames().get().get(PLAIN);
        Check.equal(d.partitions().stream().map(TopicPartitionInfo::partition).toList(), List.of(0, 1, 2),
                "partitions of " + PLAIN + " after increaseTo(3)");
        Check.failsWith(InvalidPartitionsException.class, "shrinking " + PLAIN + " to 2",
                () -> admin.createPartitions(Map.of(PLAIN, NewPartitions.increaseTo(2))).all().get());
        Check.failsWith(InvalidPartitionsException.class, "growing " + PLAIN + " to the count it has",
                () -> admin.createPartitions(Map.of(PLAIN, NewPartitions.increaseTo(3))).all().get());
        Check.say("admin: createPartitions grew %s from 1 to 3; shrinking and staying refused", PLAIN);
    }

    private static void records(Admin admin, String bootstrap) throws Exception {
        TopicPartition tp = new TopicPartition(PLAIN, 0);
        try (KafkaProducer<byte[], byte[]> producer = Clients.producer(bootstrap, "gzip")) {
            for (int i = 0; i < 10; i++) {
                producer.send(new ProducerRecord<>(PLAIN, 0, Clients.bytes("r" + i), Clients.bytes("v" + i)));
            }
            producer.flush();
        }
        admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(4))).all().get();
        Check.equal(admin.listOffsets(Map.of(tp, OffsetSpec.earliest())).partitionResult(tp).get().offset(), 4L,
                "earliest offset after deleteRecords before 4");
        long lowWatermark = admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(6)))
                .lowWatermarks().get(tp).get().lowWatermark();
        Check.equal(lowWatermark, 6L, "low watermark answered by deleteRecords before 6");
        Check.equal(admin.listOffsets(Map.of(tp, OffsetSpec.earliest())).partitionResult(tp).get().offset(), 6L,
                "earliest after deleting before 6");
        Check.equal(admin.listOffsets(Map.of(tp, OffsetSpec.latest())).partitionResult(tp).get().offset(), 10L,
                "latest after deleting");
        Check.failsWith(OffsetOutOfRangeException.class, "deleting past the high watermark",
                () -> admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(20))).all().get());
        try (KafkaConsumer<byte[], byte[]> c = Clients.consumer(Clients.consumerProps(bootstrap, null, "java-admin-reader"))) {
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            Check.equal(c.position(tp), 6L, "a consumer's beginning after deleteRecords");
            List<ConsumerRecord<byte[], byte[]>> rest = Clients.pollExactly(c, 4, Duration.ofSeconds(30));
            Check.equal(rest.stream().map(r -> Clients.string(r.key())).toList(), List.of("r6", "r7", "r8", "r9"),
                    "records left after deleteRecords");
        }
        Check.say("admin: deleteRecords before 4 then 6: low watermark 6, latest 10, a consumer reads r6..r9; past the end refused");
        TopicPartition other = new TopicPartition(PLAIN, 2);
        try (KafkaProducer<byte[], byte[]> producer = Clients.producer(bootstrap, "none")) {
            for (int i = 0; i < 3; i++) {
                producer.send(new ProducerRecord<>(PLAIN, 2, Clients.bytes("x" + i), Clients.bytes("x"))).get();
            }
        }
        long all = admin.deleteRecords(Map.of(other, RecordsToDelete.beforeOffset(-1)))
                .lowWatermarks().get(other).get().lowWatermark();
        Check.equal(all, 3L, "low watermark after deleting before -1 (the high watermark)");
        Check.say("admin: deleteRecords before -1 empties %s up to its high watermark 3", other);
    }

    @SuppressWarnings("deprecation") // listConsumerGroups: the API asked for by name; listGroups is its successor.
    private static void groups(Admin admin, String bootstrap) throws Exception {
        TopicPartition tp = new TopicPartition(PLAIN, 0);
        try (KafkaConsumer<byte[], byte[]> c = Clients.consumer(Clients.consumerProps(bootstrap, GROUP, "java-admin-member"))) {
            c.subscribe(List.of(PLAIN));
            Clients.pollExactly(c, 4, Duration.ofSeconds(30));
            c.commitSync(Map.of(tp, new OffsetAndMetadata(10, "all read")));

            Collection<ConsumerGroupListing> listed = admin.listConsumerGroups().all().get();
            ConsumerGroupListing mine = listed.stream().filter(l -> l.groupId().equals(GROUP)).findFirst()
                    .orElseThrow(() -> new AssertionError("listConsumerGroups lacks " + GROUP + ": " + listed));
            Check.equal(mine.groupState(), Optional.of(GroupState.STABLE), "listed state");
            Check.equal(mine.type(), Optional.of(GroupType.CLASSIC), "listed type");
            Check.equal(mine.isSimpleConsumerGroup(), false, "listed simple");

            ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(GROUP)).describedGroups().get(GROUP).get();
            Check.equal(d.groupState(), GroupState.STABLE, "described state");
            Check.equal(d.partitionAssignor(), "range", "described assignor (the first of the client's list)");
            Check.equal(d.members().size(), 1, "described members " + d.members());
            MemberDescription m = d.members().iterator().next();
            Check.equal(m.clientId(), "java-admin-member", "member client id");
            Check.equal(m.assignment().topicPartitions(),
                    Set.of(tp, new TopicPartition(PLAIN, 1), new TopicPartition(PLAIN, 2)), "member assignment");
            Check.equal(Group.stripEpochs(admin.listConsumerGroupOffsets(GROUP).partitionsToOffsetAndMetadata().get()),
                    Map.of(tp, new OffsetAndMetadata(10, "all read")), "listConsumerGroupOffsets");
            Check.say("admin: listConsumerGroups, describeConsumerGroups (Stable, range, one member owning %s-0..2) and listConsumerGroupOffsets (%s-0 at 10)",
                    PLAIN, PLAIN);

            // The 4.x successors: listGroups (every type) and describeClassicGroups.
            Collection<GroupListing> groups = admin.listGroups().all().get();
            GroupListing group = groups.stream().filter(l -> l.groupId().equals(GROUP)).findFirst()
                    .orElseThrow(() -> new AssertionError("listGroups lacks " + GROUP + ": " + groups));
            Check.equal(group.type(), Optional.of(GroupType.CLASSIC), "listGroups type");
            Check.equal(group.protocol(), "consumer", "listGroups protocol type");
            Check.equal(group.groupState(), Optional.of(GroupState.STABLE), "listGroups state");
            ClassicGroupDescription classic = admin.describeClassicGroups(List.of(GROUP)).all().get().get(GROUP);
            Check.equal(classic.protocol(), "consumer", "describeClassicGroups protocol type");
            Check.equal(classic.protocolData(), "range", "describeClassicGroups protocol");
            Check.equal(classic.state(), ClassicGroupState.STABLE, "describeClassicGroups state");
            Check.equal(classic.members().stream().map(MemberDescription::clientId).toList(), List.of("java-admin-member"),
                    "describeClassicGroups members");
            Check.say("admin: listGroups (classic, consumer, Stable) and describeClassicGroups (range, one member) agree");
        }
        ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(GROUP)).describedGroups().get(GROUP).get();
        Check.equal(d.groupState(), GroupState.EMPTY, "state after the member closed");
        Check.equal(d.members().size(), 0, "members after the member closed");

        TopicPartition tp1 = new TopicPartition(PLAIN, 1);
        admin.alterConsumerGroupOffsets(GROUP, Map.of(tp, new OffsetAndMetadata(7, "moved"), tp1, new OffsetAndMetadata(0)))
                .all().get();
        Check.equal(Group.stripEpochs(admin.listConsumerGroupOffsets(GROUP).partitionsToOffsetAndMetadata().get()),
                Map.of(tp, new OffsetAndMetadata(7, "moved"), tp1, new OffsetAndMetadata(0)),
                "offsets after alterConsumerGroupOffsets");
        admin.deleteConsumerGroupOffsets(GROUP, Set.of(tp1)).all().get();
        Check.equal(Group.stripEpochs(admin.listConsumerGroupOffsets(GROUP).partitionsToOffsetAndMetadata().get()),
                Map.of(tp, new OffsetAndMetadata(7, "moved")), "offsets after deleteConsumerGroupOffsets");
        Check.say("admin: alterConsumerGroupOffsets of the Empty group (%s-0 to 7, %s-1 to 0) and deleteConsumerGroupOffsets of %s-1, listed back",
                PLAIN, PLAIN, PLAIN);

        admin.deleteConsumerGroups(List.of(GROUP)).all().get();
        Collection<ConsumerGroupListing> listed = admin.listConsumerGroups().all().get();
        Check.that(listed.stream().noneMatch(l -> l.groupId().equals(GROUP)), "deleted group still listed: %s", listed);
        Check.equal(admin.listConsumerGroupOffsets(GROUP).partitionsToOffsetAndMetadata().get(), Map.of(),
                "offsets of the deleted group");
        Check.say("admin: the group is Empty after its member closed, then deleted: no longer listed, no offsets");
    }

    private static void deletion(Admin admin, Uuid id) throws Exception {
        // By id (DeleteTopics v6): the plain topic.
        Uuid plainId = admin.describeTopics(List.of(PLAIN)).allTopicNames().get().get(PLAIN).topicId();
        admin.deleteTopics(TopicCollection.ofTopicIds(List.of(plainId))).all().get();
        Check.failsWith(UnknownTopicOrPartitionException.class, "describing the topic deleted by id",
                () -> admin.describeTopics(List.of(PLAIN)).allTopicNames().get());
        Check.failsWith(UnknownTopicIdException.class, "deleting an id that names no topic",
                () -> admin.deleteTopics(TopicCollection.ofTopicIds(List.of(plainId))).all().get());
        Check.say("admin: deleteTopics by id %s deleted %s; the id again refused (UnknownTopicId)", plainId, PLAIN);

        admin.deleteTopics(List.of(CONFIGURED)).all().get();
        Set<String> names = admin.listTopics(new ListTopicsOptions().listInternal(true)).names().get();
        Check.that(!names.contains(CONFIGURED) && !names.contains(PLAIN), "listTopics after deleting both: %s", names);
        // The groups used above made the offsets topic; it lists as internal.
        Check.that(names.contains("__consumer_offsets"), "listTopics(listInternal) lacks __consumer_offsets: %s", names);
        TopicDescription offsets = admin.describeTopics(List.of("__consumer_offsets")).allTopicNames().get()
                .get("__consumer_offsets");
        Check.equal(offsets.isInternal(), true, "__consumer_offsets internal");
        Check.equal(offsets.partitions().size(), 50, "__consumer_offsets partitions (offsets.topic.num.partitions)");
        Check.failsWith(UnknownTopicOrPartitionException.class, "describing the deleted topic",
                () -> admin.describeTopics(List.of(CONFIGURED)).allTopicNames().get());
        Check.failsWith(UnknownTopicOrPartitionException.class, "deleting it again",
                () -> admin.deleteTopics(List.of(CONFIGURED)).all().get());
        Check.say("admin: deleteTopics %s (id %s): gone from listTopics and describeTopics; a second delete refused", CONFIGURED, id);
    }
}
