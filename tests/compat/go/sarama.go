package main

// IBM Sarama (github.com/IBM/sarama) with config.Version set to the Kafka
// version asked for:
//
//   - admin: DescribeCluster (one broker, node 0, the controller); a topic
//     created with a setting, listed (partitions, replication factor, the
//     setting) and its config described back; a group listed, described and
//     deleted; the topic deleted;
//   - produce: an idempotent sync producer with acks=all per codec (gzip,
//     snappy, lz4, zstd), keys, headers and timestamps; every record
//     consumed back unchanged by a partition consumer at the offset the
//     producer was told;
//   - group: two members of a consumer group (ConsumeClaim marking each
//     message) share a topic's partitions; each record consumed exactly
//     once, and each partition's committed offset read back as its end
//     offset;
//   - more admin: CreatePartitions (a shrink refused), DeleteRecords with
//     the oldest and newest offsets following, AlterConfig and (from Kafka
//     2.3) IncrementalAlterConfig described back, a group's offsets
//     altered and read back with their metadata and (from 2.4) one deleted.

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

func saramaConfig(version, clientID string) *sarama.Config {
	v, err := sarama.ParseKafkaVersion(version)
	must(err, "sarama.ParseKafkaVersion "+version)
	cfg := sarama.NewConfig()
	cfg.Version = v
	cfg.ClientID = clientID
	cfg.Net.DialTimeout = stepTimeout
	cfg.Net.ReadTimeout = stepTimeout
	cfg.Net.WriteTimeout = stepTimeout
	cfg.Admin.Timeout = stepTimeout
	return cfg
}

func runSarama(bootstrap, version string) {
	if os.Getenv("SARAMA_LOG") != "" {
		sarama.Logger = log.New(os.Stderr, "[sarama] ", log.Lmicroseconds)
	}
	step("Sarama with config.Version %s", version)
	addrs := []string{bootstrap}
	adm, err := sarama.NewClusterAdmin(addrs, saramaConfig(version, "sarama-admin"))
	must(err, "sarama.NewClusterAdmin")
	defer adm.Close()

	brokers, controller, err := adm.DescribeCluster()
	must(err, "DescribeCluster")
	check(len(brokers) == 1 && brokers[0].ID() == 0 && brokers[0].Addr() == bootstrap && controller == 0,
		"DescribeCluster: %d brokers, first %d at %s, controller %d", len(brokers), brokers[0].ID(), brokers[0].Addr(), controller)
	step("DescribeCluster: one broker, node 0 at %s, controller 0", bootstrap)

	topic := unique("sarama")
	retention := "3600000"
	must(adm.CreateTopic(topic, &sarama.TopicDetail{
		NumPartitions: 4, ReplicationFactor: 1,
		ConfigEntries: map[string]*string{"retention.ms": &retention},
	}, false), "CreateTopic")
	err = adm.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 4, ReplicationFactor: 1}, false)
	check(errors.Is(err, sarama.ErrTopicAlreadyExists), "CreateTopic of an existing name: want TOPIC_ALREADY_EXISTS, got %v", err)
	topics, err := adm.ListTopics()
	must(err, "ListTopics")
	td, ok := topics[topic]
	check(ok, "ListTopics: %s missing", topic)
	got := td.ConfigEntries["retention.ms"]
	check(td.NumPartitions == 4 && td.ReplicationFactor == 1 && got != nil && *got == retention,
		"ListTopics %s: %d partitions, rf %d, retention.ms %v", topic, td.NumPartitions, td.ReplicationFactor, got)
	entries, err := adm.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic})
	must(err, "DescribeConfig")
	found := false
	for _, e := range entries {
		if e.Name == "retention.ms" {
			found = true
			check(e.Value == retention && e.Source == sarama.SourceTopic, "DescribeConfig retention.ms: %q from %v", e.Value, e.Source)
		}
	}
	check(found, "DescribeConfig of %s: no retention.ms among %d entries", topic, len(entries))
	step("CreateTopics %s (4 partitions, retention.ms=%s), again TOPIC_ALREADY_EXISTS; ListTopics and DescribeConfigs answer both back", topic, retention)

	want := saramaProduce(bootstrap, version, topic)
	saramaConsumeBack(bootstrap, version, topic, want)
	saramaGroup(bootstrap, version, topic, adm, want)
	saramaAdmin(bootstrap, version, adm)

	must(adm.DeleteTopic(topic), "DeleteTopic")
	waitFor("the deleted topic to leave ListTopics", func() error {
		topics, err := adm.ListTopics()
		if err != nil {
			return err
		}
		if _, ok := topics[topic]; ok {
			return fmt.Errorf("%s still listed", topic)
		}
		return nil
	})
	step("DeleteTopics: %s gone from ListTopics", topic)
}

var saramaCodecs = []struct {
	name  string
	codec sarama.CompressionCodec
}{
	{"gzip", sarama.CompressionGZIP},
	{"snappy", sarama.CompressionSnappy},
	{"lz4", sarama.CompressionLZ4},
	{"zstd", sarama.CompressionZSTD},
}

const saramaRecordsPerCodec = 200

func saramaProduce(bootstrap, version, topic string) map[tp]sent {
	want := map[tp]sent{}
	base := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	var names []string
	for ci, c := range saramaCodecs {
		cfg := saramaConfig(version, "sarama-producer-"+c.name)
		if c.codec == sarama.CompressionZSTD && !cfg.Version.IsAtLeast(sarama.V2_1_0_0) {
			continue // Sarama refuses zstd below Kafka 2.1 (Produce v7)
		}
		names = append(names, c.name)
		cfg.Producer.RequiredAcks = sarama.WaitForAll
		cfg.Producer.Return.Successes = true
		cfg.Producer.Idempotent = true
		cfg.Net.MaxOpenRequests = 1
		cfg.Producer.Compression = c.codec
		cfg.Producer.Flush.Messages = 50
		cfg.Producer.Flush.Frequency = 5 * time.Millisecond
		p, err := sarama.NewSyncProducer([]string{bootstrap}, cfg)
		must(err, "sarama.NewSyncProducer "+c.name)
		var msgs []*sarama.ProducerMessage
		var sents []sent
		for i := range saramaRecordsPerCodec {
			s := recordFor("sarama-"+c.name, i, base.Add(time.Duration(ci)*time.Second))
			sents = append(sents, s)
			m := &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(s.key),
				Value: sarama.StringEncoder(s.value), Timestamp: s.timestamp}
			for _, h := range s.headers {
				m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(h[0]), Value: []byte(h[1])})
			}
			msgs = append(msgs, m)
		}
		must(p.SendMessages(msgs), "SendMessages "+c.name)
		for i, m := range msgs {
			key := tp{m.Partition, m.Offset}
			_, dup := want[key]
			check(!dup, "%s message %d: offset %d/%d answered twice", c.name, i, m.Partition, m.Offset)
			want[key] = sents[i]
		}
		must(p.Close(), "SyncProducer.Close "+c.name)
	}
	step("SyncProducer (idempotent, acks=all): %d records in %s, with keys, headers and timestamps", len(want), strings.Join(names, ", "))
	return want
}

func sameMessage(m *sarama.ConsumerMessage, want sent) error {
	if string(m.Key) != want.key || string(m.Value) != want.value {
		return fmt.Errorf("key %q value %q, produced %q %q", m.Key, m.Value, want.key, want.value)
	}
	if !m.Timestamp.Equal(want.timestamp) {
		return fmt.Errorf("timestamp %v, produced %v", m.Timestamp, want.timestamp)
	}
	if len(m.Headers) != len(want.headers) {
		return fmt.Errorf("%d headers, produced %d", len(m.Headers), len(want.headers))
	}
	for i, h := range m.Headers {
		if string(h.Key) != want.headers[i][0] || string(h.Value) != want.headers[i][1] {
			return fmt.Errorf("header %d %q=%q, produced %q=%q", i, h.Key, h.Value, want.headers[i][0], want.headers[i][1])
		}
	}
	return nil
}

func saramaConsumeBack(bootstrap, version, topic string, want map[tp]sent) {
	c, err := sarama.NewConsumer([]string{bootstrap}, saramaConfig(version, "sarama-consumer"))
	must(err, "sarama.NewConsumer")
	defer c.Close()
	ends := map[int32]int64{}
	for k := range want {
		ends[k.partition] = max(ends[k.partition], k.offset+1)
	}
	deadline := time.After(4 * stepTimeout)
	n := 0
	for partition, end := range ends {
		pc, err := c.ConsumePartition(topic, partition, sarama.OffsetOldest)
		must(err, "ConsumePartition")
		for next := int64(0); next < end; next++ {
			select {
			case m := <-pc.Messages():
				check(m.Offset == next, "partition %d: offset %d after %d", partition, m.Offset, next-1)
				if err := sameMessage(m, want[tp{partition, m.Offset}]); err != nil {
					failf("consumed %d/%d: %v", partition, m.Offset, err)
				}
				n++
			case err := <-pc.Errors():
				failf("ConsumePartition %d: %v", partition, err)
			case <-deadline:
				failf("partition %d: offset %d of %d not consumed in time", partition, next, end)
			}
		}
		must(pc.Close(), "PartitionConsumer.Close")
	}
	check(n == len(want), "consumed %d of %d records", n, len(want))
	step("PartitionConsumer: all %d records back in offset order, keys, values, headers and timestamps unchanged", n)
}

// saramaHandler records every message its member consumes and marks it.
type saramaHandler struct {
	name string
	mu   *sync.Mutex
	seen map[tp][]string
	// claims is what the member's current session was given.
	claims map[string][]int32
}

func (h *saramaHandler) Setup(s sarama.ConsumerGroupSession) error {
	h.mu.Lock()
	h.claims = s.Claims()
	h.mu.Unlock()
	return nil
}

func (h *saramaHandler) Cleanup(sarama.ConsumerGroupSession) error {
	h.mu.Lock()
	h.claims = nil
	h.mu.Unlock()
	return nil
}

func (h *saramaHandler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		h.mu.Lock()
		key := tp{m.Partition, m.Offset}
		h.seen[key] = append(h.seen[key], h.name)
		h.mu.Unlock()
		s.MarkMessage(m, "")
	}
	return nil
}

func saramaGroup(bootstrap, version, topic string, adm sarama.ClusterAdmin, produced map[tp]sent) {
	group := unique("sarama-group")
	var mu sync.Mutex
	seen := map[tp][]string{}
	type running struct {
		cg      sarama.ConsumerGroup
		handler *saramaHandler
		cancel  context.CancelFunc
		done    chan error
	}
	var members []*running
	for _, name := range []string{"sarama-a", "sarama-b"} {
		cfg := saramaConfig(version, name)
		cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
		cfg.Consumer.Offsets.AutoCommit.Interval = 100 * time.Millisecond
		cfg.Consumer.Group.Session.Timeout = 6 * time.Second
		cfg.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
		cg, err := sarama.NewConsumerGroup([]string{bootstrap}, group, cfg)
		must(err, "sarama.NewConsumerGroup "+name)
		h := &saramaHandler{name: name, mu: &mu, seen: seen}
		ctx, cancel := context.WithCancel(context.Background())
		r := &running{cg: cg, handler: h, cancel: cancel, done: make(chan error, 1)}
		go func() {
			// Consume returns at each rebalance; it is called again until
			// the member is stopped.
			for ctx.Err() == nil {
				if err := cg.Consume(ctx, []string{topic}, h); err != nil && ctx.Err() == nil {
					r.done <- err
					return
				}
			}
			r.done <- nil
		}()
		members = append(members, r)
	}
	// Both members in one generation, the four partitions split between them.
	waitFor("both members to share the 4 partitions", func() error {
		mu.Lock()
		defer mu.Unlock()
		var all []int32
		for _, m := range members {
			ps := m.handler.claims[topic]
			if len(ps) == 0 {
				return fmt.Errorf("%s has no partitions", m.handler.name)
			}
			all = append(all, ps...)
		}
		slices.Sort(all)
		if !slices.Equal(all, []int32{0, 1, 2, 3}) {
			return fmt.Errorf("claims %v", all)
		}
		return nil
	})
	waitFor("every record to be consumed by the group", func() error {
		for _, m := range members {
			select {
			case err := <-m.done:
				failf("member %s: Consume: %v", m.handler.name, err)
			default:
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if len(seen) < len(produced) {
			return fmt.Errorf("%d of %d records consumed", len(seen), len(produced))
		}
		return nil
	})
	mu.Lock()
	for key, by := range seen {
		_, ok := produced[key]
		check(ok, "group consumed %d/%d, which the producer was not told", key.partition, key.offset)
		check(len(by) == 1, "record %d/%d consumed %d times, by %v", key.partition, key.offset, len(by), by)
	}
	mu.Unlock()
	step("ConsumerGroup: two members split 4 partitions, ConsumeClaim saw each of %d records exactly once", len(produced))

	groups, err := adm.ListConsumerGroups()
	must(err, "ListConsumerGroups")
	check(groups[group] == "consumer", "ListConsumerGroups: %s has protocol type %q", group, groups[group])
	described, err := adm.DescribeConsumerGroups([]string{group})
	must(err, "DescribeConsumerGroups")
	check(len(described) == 1 && described[0].GroupId == group, "DescribeConsumerGroups: %d answers", len(described))
	d := described[0]
	check(d.State == "Stable" && len(d.Members) == 2 && d.Protocol == "range",
		"DescribeConsumerGroups: state %s, %d members, protocol %s", d.State, len(d.Members), d.Protocol)
	var assigned []int32
	for _, m := range d.Members {
		a, err := m.GetMemberAssignment()
		must(err, "member assignment")
		assigned = append(assigned, a.Topics[topic]...)
	}
	slices.Sort(assigned)
	check(slices.Equal(assigned, []int32{0, 1, 2, 3}), "DescribeConsumerGroups: assignments %v", assigned)
	step("ListConsumerGroups and DescribeConsumerGroups: Stable, two members, range, partitions 0-3 assigned once")

	// Closing a member commits what it marked.
	for _, m := range members {
		m.cancel()
		select {
		case err := <-m.done:
			must(err, "member "+m.handler.name)
		case <-time.After(stepTimeout):
			failf("member %s did not stop", m.handler.name)
		}
		must(m.cg.Close(), "ConsumerGroup.Close")
	}
	ends := map[int32]int64{}
	for k := range produced {
		ends[k.partition] = max(ends[k.partition], k.offset+1)
	}
	offsets, err := adm.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0, 1, 2, 3}})
	must(err, "ListConsumerGroupOffsets")
	for p := range int32(4) {
		b := offsets.GetBlock(topic, p)
		check(b != nil && b.Err == sarama.ErrNoError && b.Offset == ends[p],
			"committed offset of partition %d: %+v, end %d", p, b, ends[p])
	}
	step("OffsetFetch: the offsets ConsumeClaim marked, committed, are every partition's end offset")

	must(adm.DeleteConsumerGroup(group), "DeleteConsumerGroup")
	groups, err = adm.ListConsumerGroups()
	must(err, "ListConsumerGroups")
	_, still := groups[group]
	check(!still, "ListConsumerGroups after DeleteConsumerGroup still lists %s", group)
	step("DeleteConsumerGroup: %s gone from ListConsumerGroups", group)
}

// describedConfig is one topic setting as DescribeConfigs answers it.
func describedConfig(adm sarama.ClusterAdmin, topic, key string) *sarama.ConfigEntry {
	entries, err := adm.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic})
	must(err, "DescribeConfig")
	for i := range entries {
		if entries[i].Name == key {
			return &entries[i]
		}
	}
	failf("DescribeConfig of %s: no %s among %d entries", topic, key, len(entries))
	return nil
}

// saramaAdmin: CreatePartitions, DeleteRecords and ListOffsets, AlterConfig
// and IncrementalAlterConfig described back, and a group's offsets altered,
// read back and deleted, on a topic of its own.
func saramaAdmin(bootstrap, version string, adm sarama.ClusterAdmin) {
	topic := unique("sarama-admin")
	must(adm.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1}, false), "CreateTopic")
	must(adm.CreatePartitions(topic, 3, nil, false), "CreatePartitions")
	md, err := adm.DescribeTopics([]string{topic})
	must(err, "DescribeTopics")
	check(len(md) == 1 && len(md[0].Partitions) == 3, "DescribeTopics after CreatePartitions to 3: %+v", md)
	err = adm.CreatePartitions(topic, 2, nil, false)
	check(errors.Is(err, sarama.ErrInvalidPartitions), "CreatePartitions 3 to 2: want INVALID_PARTITIONS, got %v", err)

	cfg := saramaConfig(version, "sarama-admin-producer")
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	client, err := sarama.NewClient([]string{bootstrap}, cfg)
	must(err, "sarama.NewClient")
	defer client.Close()
	p, err := sarama.NewSyncProducerFromClient(client)
	must(err, "NewSyncProducerFromClient")
	for i := range 10 {
		_, off, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Partition: 0, Value: sarama.StringEncoder(fmt.Sprint(i))})
		must(err, "SendMessage")
		check(off == int64(i), "SendMessage %d to an empty partition: offset %d", i, off)
	}
	must(p.Close(), "SyncProducer.Close")
	must(adm.DeleteRecords(topic, map[int32]int64{0: 3}), "DeleteRecords")
	oldest, err := client.GetOffset(topic, 0, sarama.OffsetOldest)
	must(err, "GetOffset oldest")
	newest, err := client.GetOffset(topic, 0, sarama.OffsetNewest)
	must(err, "GetOffset newest")
	check(oldest == 3 && newest == 10, "after DeleteRecords below 3 of 10: oldest %d newest %d", oldest, newest)
	step("CreatePartitions 2 to 3 (3 to 2 INVALID_PARTITIONS); DeleteRecords below 3 of 10: ListOffsets oldest 3, newest 10")

	value := "86400000"
	must(adm.AlterConfig(sarama.TopicResource, topic, map[string]*string{"retention.ms": &value}, false), "AlterConfig")
	e := describedConfig(adm, topic, "retention.ms")
	check(e.Value == value && e.Source == sarama.SourceTopic, "AlterConfig retention.ms: described %q from %v", e.Value, e.Source)
	if cfg.Version.IsAtLeast(sarama.V2_3_0_0) { // IncrementalAlterConfigs is Kafka 2.3's
		must(adm.IncrementalAlterConfig(sarama.TopicResource, topic, map[string]sarama.IncrementalAlterConfigsEntry{
			"retention.ms": {Operation: sarama.IncrementalAlterConfigsOperationDelete},
			"segment.ms":   {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: &value},
		}, false), "IncrementalAlterConfig")
		e = describedConfig(adm, topic, "retention.ms")
		check(e.Value == "604800000" && e.Source == sarama.SourceDefault, "IncrementalAlterConfig DELETE retention.ms: described %q from %v", e.Value, e.Source)
		e = describedConfig(adm, topic, "segment.ms")
		check(e.Value == value && e.Source == sarama.SourceTopic, "IncrementalAlterConfig SET segment.ms: described %q from %v", e.Value, e.Source)
		step("AlterConfig and IncrementalAlterConfig (DELETE, SET) described back")
	} else {
		step("AlterConfig described back (IncrementalAlterConfigs needs Kafka 2.3 in Sarama)")
	}

	group := unique("sarama-offsets")
	resp, err := adm.AlterConsumerGroupOffsets(group, map[string]map[int32]sarama.OffsetAndMetadata{
		topic: {0: {Offset: 5, Metadata: "five"}, 1: {Offset: 0, Metadata: ""}},
	}, nil)
	must(err, "AlterConsumerGroupOffsets")
	for part := range int32(2) {
		kerr := resp.Errors[topic][part]
		check(kerr == sarama.ErrNoError, "AlterConsumerGroupOffsets partition %d: %v", part, kerr)
	}
	got, err := adm.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0, 1}})
	must(err, "ListConsumerGroupOffsets")
	b0, b1 := got.GetBlock(topic, 0), got.GetBlock(topic, 1)
	check(b0 != nil && b0.Offset == 5 && b0.Metadata == "five" && b1 != nil && b1.Offset == 0,
		"offsets committed 5 (\"five\") and 0 read back as %+v and %+v", b0, b1)
	if cfg.Version.IsAtLeast(sarama.V2_4_0_0) { // OffsetDelete is Kafka 2.4's
		must(adm.DeleteConsumerGroupOffset(group, topic, 0), "DeleteConsumerGroupOffset")
		got, err = adm.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0, 1}})
		must(err, "ListConsumerGroupOffsets")
		b0, b1 = got.GetBlock(topic, 0), got.GetBlock(topic, 1)
		check(b0 != nil && b0.Offset == -1 && b1 != nil && b1.Offset == 0,
			"after DeleteConsumerGroupOffset of partition 0: read back %+v and %+v", b0, b1)
		step("AlterConsumerGroupOffsets read back with metadata; DeleteConsumerGroupOffset removes one partition's")
	} else {
		step("AlterConsumerGroupOffsets read back with metadata (OffsetDelete needs Kafka 2.4 in Sarama)")
	}
	must(adm.DeleteTopic(topic), "DeleteTopic")
}
