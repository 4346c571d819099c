package conveyor.compat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.MemberToRemove;
import org.apache.kafka.clients.admin.RemoveMembersFromConsumerGroupOptions;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.RangeAssignor;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.TopicPartition;

/**
 * A classic-protocol group of three members sharing a topic of
 * {@link #PARTITIONS} partitions, once with the eager range assignor and
 * once with the cooperative sticky one: each member gets two partitions,
 * every record is consumed exactly once and by its partition's owner, the
 * commits and the broker's DescribeGroups agree with what the members see;
 * then one member leaves, the other two take over its partitions, and the
 * records produced after that are consumed exactly once by them. Then
 * static members: one closes and comes back under its instance id without
 * a rebalance, and both are removed by instance id.
 */
final class Group {
    static final int PARTITIONS = 6;
    static final int PER_PHASE = 600;
    static final Duration SETTLE = Duration.ofSeconds(30);

    private Group() {}

    static void run(String bootstrap) throws Exception {
        try (Admin admin = Clients.admin(bootstrap)) {
            rebalance(admin, bootstrap, "range", RangeAssignor.class.getName());
            rebalance(admin, bootstrap, "cooperative-sticky", CooperativeStickyAssignor.class.getName());
            staticMembers(admin, bootstrap);
        }
    }

    /**
     * Static membership (group.instance.id): a member that closes and comes
     * back under the same instance id gets its partitions again without a
     * rebalance of the other member; at the end both are removed by
     * instance id (removeMembersFromConsumerGroup) and the group is Empty.
     */
    private static void staticMembers(Admin admin, String bootstrap) throws Exception {
        String topic = "java-group-static";
        String group = "java-group-static";
        String assignor = RangeAssignor.class.getName();
        Clients.createTopic(admin, topic, PARTITIONS, Map.of());
        Ledger ledger = new Ledger();
        // The first to join leads; the one restarted is not the leader.
        Member a = new Member(bootstrap, group, topic, "static-a", assignor, ledger, "instance-a");
        a.thread.start();
        List<Member> members = new ArrayList<>(List.of(a));
        try {
            Check.eventually(SETTLE, "static-a owning every partition", () -> balanced(List.of(a), PARTITIONS));
            Member b = new Member(bootstrap, group, topic, "static-b", assignor, ledger, "instance-b");
            members.add(b);
            b.thread.start();
            Check.eventually(SETTLE, "two static members with three partitions each: " + describe(members),
                    () -> balanced(members, 3));
            checkDescribed(admin, group, "range", members);
            ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group)).describedGroups().get(group).get();
            for (MemberDescription m : d.members()) {
                Check.equal(m.groupInstanceId(), Optional.of(m.clientId().replace("static-", "instance-")),
                        "instance id of " + m.clientId());
            }
            Check.say("group static: two static members, %s, instance ids described", describe(members));

            int before = a.rebalances.get();
            Set<TopicPartition> owned = b.assignment;
            String oldId = b.memberId;
            members.remove(b);
            b.leave();
            d = admin.describeConsumerGroups(List.of(group)).describedGroups().get(group).get();
            Check.equal(d.members().size(), 2, "members after a static member closed (it sends no LeaveGroup)");
            Member back = new Member(bootstrap, group, topic, "static-b", assignor, ledger, "instance-b");
            members.add(back);
            back.thread.start();
            Check.eventually(SETTLE, "instance-b back with its partitions " + owned, () -> {
                back.check();
                return back.assignment.equals(owned);
            });
            Check.that(!back.memberId.isEmpty() && !back.memberId.equals(oldId),
                    "instance-b came back as member %s, before %s", back.memberId, oldId);
            // Several of static-a's heartbeats: a rebalance would have reached it.
            Thread.sleep(1500);
            a.check();
            Check.equal(a.rebalances.get(), before, "rebalances static-a took part in while instance-b came back");
            checkDescribed(admin, group, "range", members);
            Check.say("group static: instance-b closed and came back as a new member id with %s, no rebalance for static-a",
                    owned.stream().map(TopicPartition::partition).sorted().toList());

            produce(bootstrap, topic, 0, PER_PHASE);
            Check.eventually(SETTLE, PER_PHASE + " records consumed", () -> {
                members.forEach(Member::check);
                return ledger.consumedBy.size() >= PER_PHASE;
            });
            checkConsumed(ledger, members, 0, PER_PHASE, "static members");
            checkCommitted(admin, group, topic, PER_PHASE / PARTITIONS);
            Check.say("group static: %d records consumed exactly once by their partitions' owners", PER_PHASE);
        } finally {
            for (Member m : members) {
                m.stop = true;
            }
        }
        for (Member m : members) {
            m.leave();
        }
        admin.removeMembersFromConsumerGroup(group, new RemoveMembersFromConsumerGroupOptions(
                List.of(new MemberToRemove("instance-a"), new MemberToRemove("instance-b")))).all().get();
        ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group)).describedGroups().get(group).get();
        Check.equal(d.groupState(), GroupState.EMPTY, group + " state after removing both instances");
        Check.equal(d.members().size(), 0, group + " members after removing both instances");
        Check.say("group static: removeMembersFromConsumerGroup by instance id leaves the group Empty");
    }

    /** Which member consumed each record (by key), and how often records were consumed. */
    static final class Ledger {
        final Map<String, String> consumedBy = new ConcurrentHashMap<>();
        final AtomicInteger deliveries = new AtomicInteger();
        final List<String> wrongOwner = java.util.Collections.synchronizedList(new ArrayList<>());
    }

    /** One group member polling on its own thread, committing after each non-empty poll. */
    static final class Member implements Runnable {
        final String name;
        final KafkaConsumer<byte[], byte[]> consumer;
        final Ledger ledger;
        final String topic;
        volatile Set<TopicPartition> assignment = Set.of();
        volatile String memberId = "";
        /** onPartitionsAssigned calls: one per rebalance this member took part in. */
        final AtomicInteger rebalances = new AtomicInteger();
        volatile boolean stop;
        volatile Throwable failure;
        final Thread thread;

        Member(String bootstrap, String group, String topic, String name, String assignor, Ledger ledger) {
            this(bootstrap, group, topic, name, assignor, ledger, null);
        }

        /** A static member when {@code instanceId} is not null. */
        Member(String bootstrap, String group, String topic, String name, String assignor, Ledger ledger,
                String instanceId) {
            this.name = name;
            this.ledger = ledger;
            this.topic = topic;
            Properties p = Clients.consumerProps(bootstrap, group, name);
            p.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, assignor);
            if (instanceId != null) {
                p.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, instanceId);
            }
            this.consumer = Clients.consumer(p);
            this.thread = new Thread(this, name);
        }

        @Override
        public void run() {
            try {
                consumer.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                    @Override
                    public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                        // Nothing is pending: every poll's records are committed before the next poll.
                    }

                    @Override
                    public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                        rebalances.incrementAndGet();
                    }
                });
                while (!stop) {
                    var records = consumer.poll(Duration.ofMillis(100));
                    Set<TopicPartition> owned = consumer.assignment();
                    for (ConsumerRecord<byte[], byte[]> r : records) {
                        ledger.deliveries.incrementAndGet();
                        String key = Clients.string(r.key());
                        String before = ledger.consumedBy.putIfAbsent(key, name);
                        if (before != null) {
                            throw new AssertionError(name + " consumed " + key + " again (first by " + before + ")");
                        }
                        if (!owned.contains(new TopicPartition(r.topic(), r.partition()))) {
                            ledger.wrongOwner.add(key);
                        }
                    }
                    if (!records.isEmpty()) {
                        consumer.commitSync();
                    }
                    assignment = Set.copyOf(owned);
                    memberId = consumer.groupMetadata().memberId();
                }
                // close() sends LeaveGroup, so the others rebalance at once
                // (a static member's does not: it is expected back).
                consumer.close();
            } catch (Throwable e) {
                failure = e;
            }
        }

        void check() {
            if (failure != null) {
                throw new AssertionError("member " + name + " failed", failure);
            }
        }

        void leave() throws InterruptedException {
            stop = true;
            thread.join(Duration.ofSeconds(30).toMillis());
            Check.that(!thread.isAlive(), "member %s did not close within 30 s", name);
            check();
        }
    }

    /** True when the members' assignments are disjoint, {@code each} partitions apiece, covering the topic. */
    static boolean balanced(List<Member> members, int each) {
        Set<TopicPartition> union = new HashSet<>();
        for (Member m : members) {
            m.check();
            Set<TopicPartition> a = m.assignment;
            if (a.size() != each) {
                return false;
            }
            union.addAll(a);
        }
        return union.size() == PARTITIONS;
    }

    static String describe(List<Member> members) {
        Map<String, Object> m = new TreeMap<>();
        for (Member member : members) {
            List<Integer> ps = member.assignment.stream().map(TopicPartition::partition).sorted().toList();
            m.put(member.name, ps);
        }
        return m.toString();
    }

    private static void produce(String bootstrap, String topic, int from, int to) throws Exception {
        try (KafkaProducer<byte[], byte[]> producer = Clients.producer(bootstrap, "none")) {
            for (int i = from; i < to; i++) {
                producer.send(new ProducerRecord<>(topic, i % PARTITIONS, Clients.bytes("g" + i), Clients.bytes("v" + i)));
            }
            producer.flush();
        }
    }

    /** Every record in [from, to) consumed once, by the member owning its partition now. */
    private static void checkConsumed(Ledger ledger, List<Member> members, int from, int to, String what) {
        Map<String, Member> byName = new HashMap<>();
        members.forEach(m -> byName.put(m.name, m));
        for (int i = from; i < to; i++) {
            String owner = ledger.consumedBy.get("g" + i);
            Check.that(owner != null, "%s: record g%d never consumed", what, i);
            Member m = byName.get(owner);
            Check.that(m != null, "%s: record g%d consumed by %s, not a current member", what, i, owner);
            Check.that(m.assignment.contains(new TopicPartition(members.get(0).topic, i % PARTITIONS)),
                    "%s: record g%d (partition %d) consumed by %s, which owns %s", what, i, i % PARTITIONS, owner,
                    m.assignment);
        }
        Check.equal(ledger.deliveries.get(), to, what + ": deliveries in all (each record once)");
        Check.equal(ledger.wrongOwner, List.of(), what + ": records consumed from a partition not assigned");
    }

    /** Waits until the group's committed offsets are {@code each} on every partition. */
    private static void checkCommitted(Admin admin, String group, String topic, long each) throws Exception {
        Map<TopicPartition, OffsetAndMetadata> want = new HashMap<>();
        for (int p = 0; p < PARTITIONS; p++) {
            want.put(new TopicPartition(topic, p), new OffsetAndMetadata(each));
        }
        Map<TopicPartition, OffsetAndMetadata>[] got = new Map[1];
        Check.eventually(SETTLE, "committed offsets " + each + " on every partition", () -> {
            try {
                got[0] = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
            } catch (Exception e) {
                throw new AssertionError(e);
            }
            return want.equals(stripEpochs(got[0]));
        });
    }

    /** Offsets and metadata only: the leader epoch a broker returns is its own business. */
    static Map<TopicPartition, OffsetAndMetadata> stripEpochs(Map<TopicPartition, OffsetAndMetadata> m) {
        Map<TopicPartition, OffsetAndMetadata> out = new HashMap<>();
        m.forEach((tp, o) -> out.put(tp, o == null ? null : new OffsetAndMetadata(o.offset(), o.metadata())));
        return out;
    }

    /** The broker's DescribeGroups answer against what the members report. */
    private static void checkDescribed(Admin admin, String group, String protocol, List<Member> members) throws Exception {
        ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group)).describedGroups().get(group).get();
        Check.equal(d.groupState(), GroupState.STABLE, group + " state");
        Check.equal(d.type(), GroupType.CLASSIC, group + " type");
        Check.equal(d.partitionAssignor(), protocol, group + " assignor");
        Check.equal(d.coordinator().id(), 0, group + " coordinator");
        Map<String, Set<TopicPartition>> described = new TreeMap<>();
        for (MemberDescription m : d.members()) {
            described.put(m.clientId(), m.assignment().topicPartitions());
            Check.that(!m.consumerId().isEmpty() && !m.host().isEmpty(), "%s member %s: id %s host %s",
                    group, m.clientId(), m.consumerId(), m.host());
        }
        Map<String, Set<TopicPartition>> reported = new TreeMap<>();
        members.forEach(m -> reported.put(m.name, m.assignment));
        Check.equal(described, reported, group + " members and their assignments, described against reported");
    }

    private static void rebalance(Admin admin, String bootstrap, String protocol, String assignor) throws Exception {
        String topic = "java-group-" + protocol;
        String group = "java-group-" + protocol;
        Clients.createTopic(admin, topic, PARTITIONS, Map.of());
        Ledger ledger = new Ledger();
        List<Member> members = new ArrayList<>();
        for (String name : List.of("a", "b", "c")) {
            Member m = new Member(bootstrap, group, topic, protocol + "-" + name, assignor, ledger);
            members.add(m);
            m.thread.start();
        }
        try {
            Check.eventually(SETTLE, "three members with two partitions each: " + describe(members),
                    () -> balanced(members, 2));
            Check.say("group %s: three members joined, assignment %s", protocol, describe(members));
            checkDescribed(admin, group, protocol, members);
            Check.say("group %s: DescribeGroups shows the same members and assignments, state Stable", protocol);

            produce(bootstrap, topic, 0, PER_PHASE);
            Check.eventually(SETTLE, PER_PHASE + " records consumed", () -> {
                members.forEach(Member::check);
                return ledger.consumedBy.size() >= PER_PHASE;
            });
            checkConsumed(ledger, members, 0, PER_PHASE, protocol + " with three members");
            checkCommitted(admin, group, topic, PER_PHASE / PARTITIONS);
            Check.say("group %s: %d records consumed exactly once, each by its partition's owner; committed %d on every partition",
                    protocol, PER_PHASE, PER_PHASE / PARTITIONS);

            Member leaving = members.remove(2);
            Set<TopicPartition> orphaned = leaving.assignment;
            leaving.leave();
            Check.eventually(SETTLE, "two members with three partitions each: " + describe(members),
                    () -> balanced(members, 3));
            Check.say("group %s: %s left, its partitions %s reassigned: %s", protocol, leaving.name,
                    orphaned.stream().map(TopicPartition::partition).sorted().toList(), describe(members));
            checkDescribed(admin, group, protocol, members);

            produce(bootstrap, topic, PER_PHASE, 2 * PER_PHASE);
            Check.eventually(SETTLE, 2 * PER_PHASE + " records consumed", () -> {
                members.forEach(Member::check);
                return ledger.consumedBy.size() >= 2 * PER_PHASE;
            });
            checkConsumed(ledger, members, PER_PHASE, 2 * PER_PHASE, protocol + " with two members");
            checkCommitted(admin, group, topic, 2 * PER_PHASE / PARTITIONS);
            Check.say("group %s: %d more records consumed exactly once by the remaining two; committed %d on every partition",
                    protocol, PER_PHASE, 2 * PER_PHASE / PARTITIONS);
        } finally {
            for (Member m : members) {
                m.stop = true;
            }
        }
        for (Member m : members) {
            m.leave();
        }
        ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group)).describedGroups().get(group).get();
        Check.equal(d.groupState(), GroupState.EMPTY, group + " state after every member left");
        Check.equal(d.members().size(), 0, group + " members after every member left");
        checkCommitted(admin, group, topic, 2 * PER_PHASE / PARTITIONS);
        Check.say("group %s: every member left; the group is Empty and keeps its commits", protocol);
    }
}
