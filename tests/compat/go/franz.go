package main

// franz-go (github.com/twmb/franz-go): kgo's producer and group consumer and
// kadm's admin client.
//
//   - admin: the cluster's one broker; a topic created with a setting, an
//     existing name refused, listed and described (leader, replicas, ISR);
//     its configs described (value and source) and altered incrementally
//     (SET, DELETE) and whole (AlterConfigs), described back each time, a
//     bad value refused; partitions added and a shrink refused; records
//     deleted, with the start offset and a consumer following; offsets
//     listed (start, end, after a timestamp, the largest timestamp); the
//     topic deleted and gone;
//   - produce: one idempotent producer per codec (none, gzip, snappy, lz4,
//     zstd), keys, headers and timestamps, every record consumed back
//     unchanged at the offset the producer was told, in a batch of that
//     codec and that producer's id;
//   - limits: a record over a topic's max.message.bytes refused with
//     MESSAGE_TOO_LARGE; message.timestamp.type=LogAppendTime stamping the
//     broker's clock; the partition's bytes in DescribeLogDirs;
//   - group: three members joining one after another, the group settling
//     each time before more records are produced; each record consumed
//     exactly once and unchanged, each partition's committed offset read
//     back as its end offset, the group listed and described (members,
//     assignments covering every partition once), then empty after the
//     members leave with its offsets kept and no lag; one partition's
//     offset deleted (OffsetDelete), the others kept; the group deleted.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func runFranz(bootstrap string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap))
	must(err, "kgo.NewClient")
	defer cl.Close()
	adm := kadm.NewClient(cl)
	franzAdmin(bootstrap, adm)
	franzProduceEveryCodec(bootstrap, adm)
	franzTopicLimits(bootstrap, adm)
	franzGroup(bootstrap, adm)
}

// franzTopicLimits checks two topic settings a producer meets: a batch over
// max.message.bytes is refused, and message.timestamp.type=LogAppendTime
// replaces the producer's timestamps with the broker's clock. The log
// directory then describes the partition's bytes.
func franzTopicLimits(bootstrap string, adm *kadm.Client) {
	ctx, cancel := timeout()
	defer cancel()
	topic := unique("franz-limits")
	created, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{
		"max.message.bytes":      kadm.StringPtr("2000"),
		"message.timestamp.type": kadm.StringPtr("LogAppendTime"),
	}, topic)
	must(err, "CreateTopic")
	must(created.Err, "CreateTopic "+topic)
	p, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.RecordRetries(0))
	must(err, "kgo.NewClient producer")
	defer p.Close()

	big := &kgo.Record{Topic: topic, Value: make([]byte, 5000)}
	err = p.ProduceSync(ctx, big).FirstErr()
	check(errors.Is(err, kerr.MessageTooLarge), "a 5000-byte record to a topic with max.message.bytes=2000: want MESSAGE_TOO_LARGE, got %v", err)

	before := time.Now().Add(-time.Second)
	old := &kgo.Record{Topic: topic, Key: []byte("k"), Value: []byte("stamped"), Timestamp: before.Add(-time.Hour)}
	must(p.ProduceSync(ctx, old).FirstErr(), "ProduceSync to a LogAppendTime topic")
	after := time.Now().Add(time.Second)

	c, err := kgo.NewClient(kgo.SeedBrokers(bootstrap),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	must(err, "kgo.NewClient consumer")
	defer c.Close()
	fs := c.PollFetches(ctx)
	must(fs.Err(), "PollFetches")
	rs := fs.Records()
	check(len(rs) == 1 && rs[0].Offset == 0 && string(rs[0].Value) == "stamped",
		"consumed from a topic where only one record was accepted: %s", describeRecords(rs))
	r := rs[0]
	check(r.Attrs.TimestampType() == 1 && r.Timestamp.After(before) && r.Timestamp.Before(after),
		"LogAppendTime record: timestamp type %d, timestamp %v, want type 1 between %v and %v (produced with %v)",
		r.Attrs.TimestampType(), r.Timestamp, before, after, old.Timestamp)
	step("max.message.bytes=2000: a 5000-byte record is MESSAGE_TOO_LARGE, nothing written; LogAppendTime: the record comes back stamped with the broker's time")

	dirs, err := adm.DescribeAllLogDirs(ctx, kadm.TopicsSet{topic: {0: {}}})
	must(err, "DescribeLogDirs")
	var sizes []int64
	dirs.Each(func(d kadm.DescribedLogDir) {
		must(d.Err, "DescribeLogDirs "+d.Dir)
		if part, ok := d.Topics.Lookup(topic, 0); ok {
			sizes = append(sizes, part.Size)
		}
	})
	check(len(sizes) == 1 && sizes[0] > 0, "DescribeLogDirs: %s/0 in %d directories, sizes %v", topic, len(sizes), sizes)
	step("DescribeLogDirs: %s/0 in one directory, %d bytes", topic, sizes[0])
}

func timeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), stepTimeout)
}

// configOf finds key in a described resource, failing if it is missing.
func configOf(rc kadm.ResourceConfig, key string) kadm.Config {
	for _, c := range rc.Configs {
		if c.Key == key {
			return c
		}
	}
	failf("DescribeConfigs of %s: no %s among %d configs", rc.Name, key, len(rc.Configs))
	return kadm.Config{}
}

func describeTopicConfigs(adm *kadm.Client, topic string) kadm.ResourceConfig {
	ctx, cancel := timeout()
	defer cancel()
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	must(err, "DescribeTopicConfigs")
	rc, err := rcs.On(topic, nil)
	must(err, "DescribeTopicConfigs: the topic's answer")
	must(rc.Err, "DescribeTopicConfigs "+topic)
	return rc
}

func checkConfig(rc kadm.ResourceConfig, key, value string, source kmsg.ConfigSource) {
	c := configOf(rc, key)
	check(c.MaybeValue() == value && c.Source == source,
		"%s of %s: want %q from %v, broker answered %q from %v", key, rc.Name, value, source, c.MaybeValue(), c.Source)
}

func franzAdmin(bootstrap string, adm *kadm.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*stepTimeout)
	defer cancel()

	meta, err := adm.BrokerMetadata(ctx)
	must(err, "Metadata")
	check(len(meta.Brokers) == 1, "Metadata: want one broker, got %v", meta.Brokers)
	b := meta.Brokers[0]
	check(fmt.Sprintf("%s:%d", b.Host, b.Port) == bootstrap && b.NodeID == 0 && meta.Controller == 0,
		"Metadata: broker %v, controller %d; want node 0 at %s as controller", b, meta.Controller, bootstrap)
	check(meta.Cluster != "", "Metadata: empty cluster id")
	step("Metadata: one broker, node 0 at %s, controller, cluster %s", bootstrap, meta.Cluster)

	topic := unique("franz-admin")
	created, err := adm.CreateTopic(ctx, 3, 1, map[string]*string{"retention.ms": kadm.StringPtr("3600000")}, topic)
	must(err, "CreateTopic")
	must(created.Err, "CreateTopic "+topic)
	check(created.NumPartitions == 3 && created.ReplicationFactor == 1 && created.ID != (kadm.TopicID{}),
		"CreateTopic: answered %d partitions, rf %d, id %v", created.NumPartitions, created.ReplicationFactor, created.ID)
	again, err := adm.CreateTopic(ctx, 3, 1, nil, topic)
	check(errors.Is(err, kerr.TopicAlreadyExists) || errors.Is(again.Err, kerr.TopicAlreadyExists),
		"CreateTopic of an existing name: want TOPIC_ALREADY_EXISTS, got %v / %v", err, again.Err)
	step("CreateTopics: %s with 3 partitions, rf 1, id %v; the name again is TOPIC_ALREADY_EXISTS", topic, created.ID)

	listed, err := adm.ListTopics(ctx)
	must(err, "ListTopics")
	td, ok := listed[topic]
	check(ok, "ListTopics: %s missing from %v", topic, listed.Names())
	must(td.Err, "ListTopics "+topic)
	check(td.ID == created.ID && len(td.Partitions) == 3 && !td.IsInternal,
		"ListTopics %s: id %v (created %v), %d partitions, internal %v", topic, td.ID, created.ID, len(td.Partitions), td.IsInternal)
	for _, p := range td.Partitions.Sorted() {
		check(p.Err == nil && p.Leader == 0 && slices.Equal(p.Replicas, []int32{0}) && slices.Equal(p.ISR, []int32{0}),
			"ListTopics %s/%d: leader %d replicas %v isr %v err %v", topic, p.Partition, p.Leader, p.Replicas, p.ISR, p.Err)
	}
	step("ListTopics: %s, same id, 3 partitions led by node 0, replicas and ISR [0]", topic)

	rc := describeTopicConfigs(adm, topic)
	checkConfig(rc, "retention.ms", "3600000", kmsg.ConfigSourceDynamicTopicConfig)
	checkConfig(rc, "max.message.bytes", "1048588", kmsg.ConfigSourceDefaultConfig)
	checkConfig(rc, "cleanup.policy", "delete", kmsg.ConfigSourceDefaultConfig)
	step("DescribeConfigs: retention.ms=3600000 the topic's own, max.message.bytes and cleanup.policy Kafka's defaults")

	alter := func(what string, ops ...kadm.AlterConfig) {
		resps, err := adm.AlterTopicConfigs(ctx, ops, topic)
		must(err, what)
		r, err := resps.On(topic, nil)
		must(err, what+": the topic's answer")
		must(r.Err, what)
	}
	alter("IncrementalAlterConfigs SET",
		kadm.AlterConfig{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("7200000")},
		kadm.AlterConfig{Op: kadm.SetConfig, Name: "max.message.bytes", Value: kadm.StringPtr("2000000")},
		kadm.AlterConfig{Op: kadm.SetConfig, Name: "cleanup.policy", Value: kadm.StringPtr("compact,delete")})
	rc = describeTopicConfigs(adm, topic)
	checkConfig(rc, "retention.ms", "7200000", kmsg.ConfigSourceDynamicTopicConfig)
	checkConfig(rc, "max.message.bytes", "2000000", kmsg.ConfigSourceDynamicTopicConfig)
	checkConfig(rc, "cleanup.policy", "compact,delete", kmsg.ConfigSourceDynamicTopicConfig)
	alter("IncrementalAlterConfigs DELETE",
		kadm.AlterConfig{Op: kadm.DeleteConfig, Name: "retention.ms"},
		kadm.AlterConfig{Op: kadm.DeleteConfig, Name: "cleanup.policy"})
	rc = describeTopicConfigs(adm, topic)
	checkConfig(rc, "retention.ms", "604800000", kmsg.ConfigSourceDefaultConfig)
	checkConfig(rc, "cleanup.policy", "delete", kmsg.ConfigSourceDefaultConfig)
	checkConfig(rc, "max.message.bytes", "2000000", kmsg.ConfigSourceDynamicTopicConfig)
	step("IncrementalAlterConfigs: SET three settings, DELETE two back to the defaults, each described back")

	bad, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("soon")}}, topic)
	if err == nil {
		r, _ := bad.On(topic, nil)
		err = r.Err
	}
	check(errors.Is(err, kerr.InvalidConfig), "IncrementalAlterConfigs retention.ms=soon: want INVALID_CONFIG, got %v", err)
	whole, err := adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "segment.ms", Value: kadm.StringPtr("3600000")}}, topic)
	must(err, "AlterConfigs")
	r, err := whole.On(topic, nil)
	must(err, "AlterConfigs: the topic's answer")
	must(r.Err, "AlterConfigs")
	rc = describeTopicConfigs(adm, topic)
	checkConfig(rc, "segment.ms", "3600000", kmsg.ConfigSourceDynamicTopicConfig)
	checkConfig(rc, "max.message.bytes", "1048588", kmsg.ConfigSourceDefaultConfig)
	step("AlterConfigs: segment.ms set replaces max.message.bytes (back to the default); retention.ms=soon is INVALID_CONFIG")

	brokers, err := adm.DescribeBrokerConfigs(ctx, 0)
	must(err, "DescribeConfigs of the broker")
	brc, err := brokers.On("0", nil)
	must(err, "DescribeConfigs of broker 0")
	must(brc.Err, "DescribeConfigs of broker 0")
	checkConfig(brc, "num.partitions", "3", kmsg.ConfigSourceStaticBrokerConfig)
	step("DescribeConfigs of broker 0: num.partitions=3 from the broker's configuration")

	grown, err := adm.UpdatePartitions(ctx, 5, topic)
	must(err, "CreatePartitions")
	g, err := grown.On(topic, nil)
	must(err, "CreatePartitions: the topic's answer")
	must(g.Err, "CreatePartitions")
	listed, err = adm.ListTopics(ctx, topic)
	must(err, "ListTopics")
	check(len(listed[topic].Partitions) == 5, "after CreatePartitions to 5: %d partitions", len(listed[topic].Partitions))
	shrink, err := adm.UpdatePartitions(ctx, 2, topic)
	if err == nil {
		s, _ := shrink.On(topic, nil)
		err = s.Err
	}
	check(errors.Is(err, kerr.InvalidPartitions), "CreatePartitions to 2 of 5: want INVALID_PARTITIONS, got %v", err)
	step("CreatePartitions: 3 to 5, listed back; 5 to 2 is INVALID_PARTITIONS")

	franzOffsetsAndDeleteRecords(bootstrap, adm, topic)

	deleted, err := adm.DeleteTopics(ctx, topic)
	must(err, "DeleteTopics")
	d, err := deleted.On(topic, nil)
	must(err, "DeleteTopics: the topic's answer")
	must(d.Err, "DeleteTopics")
	waitFor("the deleted topic to leave ListTopics", func() error {
		listed, err := adm.ListTopics(ctx)
		if err != nil {
			return err
		}
		if listed.Has(topic) {
			return fmt.Errorf("%s still listed", topic)
		}
		return nil
	})
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err == nil {
		rc, _ := rcs.On(topic, nil)
		err = rc.Err
	}
	check(errors.Is(err, kerr.UnknownTopicOrPartition), "DescribeConfigs of a deleted topic: want UNKNOWN_TOPIC_OR_PARTITION, got %v", err)
	step("DeleteTopics: %s gone from ListTopics; DescribeConfigs of it is UNKNOWN_TOPIC_OR_PARTITION", topic)
}

// franzOffsetsAndDeleteRecords writes ten records to partition 0 of topic
// with timestamps a second apart, lists offsets, deletes the first four and
// checks a consumer from the start begins at the fifth.
func franzOffsetsAndDeleteRecords(bootstrap string, adm *kadm.Client, topic string) {
	ctx, cancel := timeout()
	defer cancel()
	p, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	must(err, "kgo.NewClient")
	defer p.Close()
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	var recs []*kgo.Record
	for i := range 10 {
		recs = append(recs, &kgo.Record{
			Topic: topic, Partition: 0, Value: fmt.Appendf(nil, "r%d", i),
			Timestamp: base.Add(time.Duration(i) * time.Second),
		})
	}
	must(p.ProduceSync(ctx, recs...).FirstErr(), "ProduceSync to partition 0")

	offsetOf := func(what string, l kadm.ListedOffsets, err error) int64 {
		must(err, what)
		o, ok := l.Lookup(topic, 0)
		check(ok, "%s: no answer for %s/0", what, topic)
		must(o.Err, what)
		return o.Offset
	}
	start, err := adm.ListStartOffsets(ctx, topic)
	s := offsetOf("ListOffsets earliest", start, err)
	end, err := adm.ListEndOffsets(ctx, topic)
	e := offsetOf("ListOffsets latest", end, err)
	check(s == 0 && e == 10, "ListOffsets of partition 0: start %d end %d, want 0 and 10", s, e)
	after, err := adm.ListOffsetsAfterMilli(ctx, base.Add(5500*time.Millisecond).UnixMilli(), topic)
	a := offsetOf("ListOffsets by timestamp", after, err)
	check(a == 6, "ListOffsets by the timestamp between records 5 and 6: %d, want 6", a)
	maxTs, err := adm.ListMaxTimestampOffsets(ctx, topic)
	m := offsetOf("ListOffsets max timestamp", maxTs, err)
	check(m == 9, "ListOffsets max timestamp: %d, want 9", m)
	step("ListOffsets: earliest 0, latest 10, by timestamp 6, largest timestamp 9")

	var dr kadm.Offsets
	dr.AddOffset(topic, 0, 4, -1)
	deleted, err := adm.DeleteRecords(ctx, dr)
	must(err, "DeleteRecords")
	resp, ok := deleted.Lookup(topic, 0)
	check(ok, "DeleteRecords: no answer for partition 0")
	must(resp.Err, "DeleteRecords")
	check(resp.LowWatermark == 4, "DeleteRecords below 4: low watermark %d", resp.LowWatermark)
	start, err = adm.ListStartOffsets(ctx, topic)
	s = offsetOf("ListOffsets earliest after DeleteRecords", start, err)
	check(s == 4, "ListOffsets earliest after DeleteRecords below 4: %d", s)

	c, err := kgo.NewClient(kgo.SeedBrokers(bootstrap),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	must(err, "kgo.NewClient consumer")
	defer c.Close()
	fs := c.PollFetches(ctx)
	must(fs.Err(), "PollFetches after DeleteRecords")
	first := fs.Records()
	check(len(first) > 0 && first[0].Offset == 4 && string(first[0].Value) == "r4",
		"consumer from the start after DeleteRecords: first record %v", describeRecords(first))
	step("DeleteRecords below 4: low watermark 4, ListOffsets earliest 4, a consumer from the start reads r4 first")
}

func describeRecords(rs []*kgo.Record) string {
	if len(rs) == 0 {
		return "none"
	}
	r := rs[0]
	return fmt.Sprintf("%d records, first at %s/%d@%d value %q", len(rs), r.Topic, r.Partition, r.Offset, r.Value)
}

type codec struct {
	name string
	kgo  kgo.CompressionCodec
	attr uint8 // the batch attribute's codec bits
}

var codecs = []codec{
	{"none", kgo.NoCompression(), 0},
	{"gzip", kgo.GzipCompression(), 1},
	{"snappy", kgo.SnappyCompression(), 2},
	{"lz4", kgo.Lz4Compression(), 3},
	{"zstd", kgo.ZstdCompression(), 4},
}

type tp struct {
	partition int32
	offset    int64
}

type produced struct {
	sent
	codec      uint8
	producerID int64
}

func toKgo(topic string, s sent) *kgo.Record {
	r := &kgo.Record{Topic: topic, Key: []byte(s.key), Value: []byte(s.value), Timestamp: s.timestamp}
	for _, h := range s.headers {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: h[0], Value: []byte(h[1])})
	}
	return r
}

// sameRecord compares a consumed record with what was produced.
func sameRecord(r *kgo.Record, want sent) error {
	if string(r.Key) != want.key || string(r.Value) != want.value {
		return fmt.Errorf("key %q value %q, produced %q %q", r.Key, r.Value, want.key, want.value)
	}
	if !r.Timestamp.Equal(want.timestamp) {
		return fmt.Errorf("timestamp %v, produced %v", r.Timestamp, want.timestamp)
	}
	if len(r.Headers) != len(want.headers) {
		return fmt.Errorf("%d headers, produced %d", len(r.Headers), len(want.headers))
	}
	for i, h := range r.Headers {
		if h.Key != want.headers[i][0] || string(h.Value) != want.headers[i][1] {
			return fmt.Errorf("header %d %q=%q, produced %q=%q", i, h.Key, h.Value, want.headers[i][0], want.headers[i][1])
		}
	}
	return nil
}

const recordsPerCodec = 300

func franzProduceEveryCodec(bootstrap string, adm *kadm.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*stepTimeout)
	defer cancel()
	topic := unique("franz-codecs")
	created, err := adm.CreateTopic(ctx, 3, 1, nil, topic)
	must(err, "CreateTopic")
	must(created.Err, "CreateTopic "+topic)

	want := map[tp]produced{}
	ids := map[int64]string{}
	base := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	for ci, c := range codecs {
		p, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.ProducerBatchCompression(c.kgo),
			kgo.ProducerLinger(5*time.Millisecond))
		must(err, "kgo.NewClient producer")
		var recs []*kgo.Record
		sents := map[*kgo.Record]sent{}
		for i := range recordsPerCodec {
			s := recordFor(c.name, i, base.Add(time.Duration(ci)*time.Second))
			r := toKgo(topic, s)
			sents[r] = s
			recs = append(recs, r)
		}
		results := p.ProduceSync(ctx, recs...)
		must(results.FirstErr(), "ProduceSync "+c.name)
		var pid int64 = -1
		for i, res := range results {
			r := res.Record
			check(r.ProducerID >= 0 && (pid == -1 || r.ProducerID == pid),
				"%s record %d: producer id %d (others %d): not idempotent", c.name, i, r.ProducerID, pid)
			pid = r.ProducerID
			key := tp{r.Partition, r.Offset}
			_, dup := want[key]
			check(!dup, "%s record %d: offset %d/%d answered twice", c.name, i, r.Partition, r.Offset)
			want[key] = produced{sents[r], c.attr, r.ProducerID}
		}
		_, reused := ids[pid]
		check(!reused, "producer id %d given to the %s and the %s producer", pid, ids[pid], c.name)
		ids[pid] = c.name
		p.Close()
	}
	// Every partition's offsets run from 0 with no gap.
	perPartition := map[int32]int64{}
	for k := range want {
		perPartition[k.partition]++
	}
	for k := range want {
		check(k.offset < perPartition[k.partition], "offset %d on partition %d, which has %d records", k.offset, k.partition, perPartition[k.partition])
	}
	step("Produce: %d idempotent producers (none, gzip, snappy, lz4, zstd), %d records with keys, headers and timestamps, offsets without gaps over %d partitions",
		len(codecs), len(want), len(perPartition))

	c, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	must(err, "kgo.NewClient consumer")
	defer c.Close()
	got := map[tp]bool{}
	for len(got) < len(want) {
		fs := c.PollFetches(ctx)
		must(fs.Err(), fmt.Sprintf("PollFetches (%d of %d records read)", len(got), len(want)))
		for _, r := range fs.Records() {
			key := tp{r.Partition, r.Offset}
			w, ok := want[key]
			check(ok, "consumed %d/%d, which no producer was told", r.Partition, r.Offset)
			check(!got[key], "consumed %d/%d twice", r.Partition, r.Offset)
			got[key] = true
			if err := sameRecord(r, w.sent); err != nil {
				failf("consumed %d/%d: %v", r.Partition, r.Offset, err)
			}
			check(r.Attrs.CompressionType() == w.codec, "consumed %d/%d in a batch of codec %d, produced with %d",
				r.Partition, r.Offset, r.Attrs.CompressionType(), w.codec)
			check(r.ProducerID == w.producerID, "consumed %d/%d with producer id %d, produced by %d",
				r.Partition, r.Offset, r.ProducerID, w.producerID)
		}
	}
	step("Fetch: all %d records back at their offsets, keys, values, headers and timestamps unchanged, each in its producer's codec and id", len(got))
}

// member is one kgo group consumer on its own goroutine.
type member struct {
	name   string
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu  sync.Mutex
	err error // what ended its polling early, if anything
}

func (m *member) setErr(err error) {
	m.mu.Lock()
	m.err = err
	m.mu.Unlock()
}

func (m *member) failed() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// groupLog is what every member consumed, shared by the members.
type groupLog struct {
	mu   sync.Mutex
	seen map[tp][]string
	// first is the record as first consumed at each offset.
	first map[tp]*kgo.Record
}

func (g *groupLog) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.seen)
}

func startMember(bootstrap, group, topic, name string, log *groupLog) *member {
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.ClientID(name),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(),
		kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(500*time.Millisecond),
		kgo.FetchMaxWait(500*time.Millisecond))
	must(err, "kgo.NewClient "+name)
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{name: name, cl: cl, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			fs := cl.PollRecords(ctx, 100)
			if ctx.Err() != nil {
				cl.AllowRebalance()
				return
			}
			if err := fs.Err(); err != nil {
				m.setErr(fmt.Errorf("poll: %w", err))
				cl.AllowRebalance()
				return
			}
			log.mu.Lock()
			for _, r := range fs.Records() {
				key := tp{r.Partition, r.Offset}
				log.seen[key] = append(log.seen[key], name)
				if log.first[key] == nil {
					log.first[key] = r
				}
			}
			log.mu.Unlock()
			// Commit what was processed before a rebalance may move a
			// partition, so its next owner starts after it.
			cctx, ccancel := context.WithTimeout(ctx, stepTimeout)
			err := cl.CommitUncommittedOffsets(cctx)
			ccancel()
			cl.AllowRebalance()
			if err != nil && ctx.Err() == nil {
				m.setErr(fmt.Errorf("commit: %w", err))
				return
			}
		}
	}()
	return m
}

// stop ends the member's polling, then closes it (leaving the group).
func (m *member) stop() {
	m.cancel()
	select {
	case <-m.done:
	case <-time.After(stepTimeout):
		failf("member %s did not stop polling", m.name)
	}
	m.cl.Close()
	must(m.failed(), "member "+m.name)
}

const groupRecords = 3000

// waitStable waits until the group is Stable with exactly members, every
// partition of topic (six) assigned to one of them, and returns how
// DescribeGroups answered.
func waitStable(ctx context.Context, adm *kadm.Client, group, topic string, members []*member) kadm.DescribedGroup {
	var described kadm.DescribedGroup
	waitFor(fmt.Sprintf("the group to be Stable with %d members", len(members)), func() error {
		for _, m := range members {
			if err := m.failed(); err != nil {
				failf("member %s: %v", m.name, err)
			}
		}
		ds, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			return err
		}
		described = ds[group]
		if described.Err != nil {
			return described.Err
		}
		if described.State != "Stable" || len(described.Members) != len(members) {
			return fmt.Errorf("state %s with %d members", described.State, len(described.Members))
		}
		owned := map[int32]string{}
		for _, m := range described.Members {
			ca, ok := m.Assigned.AsConsumer()
			if !ok {
				return fmt.Errorf("member %s: assignment not a consumer assignment", m.ClientID)
			}
			n := 0
			for _, t := range ca.Topics {
				if t.Topic != topic {
					return fmt.Errorf("member %s assigned topic %s", m.ClientID, t.Topic)
				}
				for _, part := range t.Partitions {
					if prev, dup := owned[part]; dup {
						return fmt.Errorf("partition %d assigned to %s and %s", part, prev, m.ClientID)
					}
					owned[part] = m.ClientID
					n++
				}
			}
			if n == 0 {
				return fmt.Errorf("member %s has no partitions yet", m.ClientID)
			}
		}
		if len(owned) != 6 {
			return fmt.Errorf("%d of 6 partitions assigned: %v", len(owned), owned)
		}
		return nil
	})
	return described
}

func franzGroup(bootstrap string, adm *kadm.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*stepTimeout)
	defer cancel()
	topic := unique("franz-group")
	group := unique("franz-group")
	created, err := adm.CreateTopic(ctx, 6, 1, nil, topic)
	must(err, "CreateTopic")
	must(created.Err, "CreateTopic "+topic)

	p, err := kgo.NewClient(kgo.SeedBrokers(bootstrap))
	must(err, "kgo.NewClient producer")
	defer p.Close()
	want := map[tp]sent{}
	base := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	produce := func(from, to int) {
		var recs []*kgo.Record
		sents := map[*kgo.Record]sent{}
		for i := from; i < to; i++ {
			s := recordFor("group", i, base)
			r := toKgo(topic, s)
			sents[r] = s
			recs = append(recs, r)
		}
		// ProduceSync answers in the order the records completed.
		results := p.ProduceSync(ctx, recs...)
		must(results.FirstErr(), "ProduceSync")
		for _, res := range results {
			want[tp{res.Record.Partition, res.Record.Offset}] = sents[res.Record]
		}
	}

	log := &groupLog{seen: map[tp][]string{}, first: map[tp]*kgo.Record{}}
	var members []*member
	// Each member joins, the group settles with the partitions split among
	// all of them, then a third of the records is produced: partitions move
	// between members with what they committed, and every member consumes.
	var described kadm.DescribedGroup
	for i, name := range []string{"member-a", "member-b", "member-c"} {
		members = append(members, startMember(bootstrap, group, topic, name, log))
		described = waitStable(ctx, adm, group, topic, members)
		produce(i*groupRecords/3, (i+1)*groupRecords/3)
		waitFor(fmt.Sprintf("the group to consume the first %d records", len(want)), func() error {
			for _, m := range members {
				if err := m.failed(); err != nil {
					failf("member %s: %v", m.name, err)
				}
			}
			if n := log.count(); n < len(want) {
				return fmt.Errorf("%d of %d records consumed", n, len(want))
			}
			return nil
		})
	}
	check(described.ProtocolType == "consumer" && described.Protocol == "cooperative-sticky",
		"DescribeGroups: protocol type %q protocol %q", described.ProtocolType, described.Protocol)
	var clients []string
	for _, m := range described.Members {
		clients = append(clients, m.ClientID)
	}
	sort.Strings(clients)
	check(strings.Join(clients, ",") == "member-a,member-b,member-c", "DescribeGroups: members %v", clients)

	log.mu.Lock()
	for key, by := range log.seen {
		w, ok := want[key]
		check(ok, "group consumed %d/%d, which the producer was not told", key.partition, key.offset)
		if err := sameRecord(log.first[key], w); err != nil {
			failf("group consumed %d/%d: %v", key.partition, key.offset, err)
		}
		check(len(by) == 1, "record %d/%d consumed %d times, by %v", key.partition, key.offset, len(by), by)
	}
	owners := map[string]int{}
	for _, by := range log.seen {
		owners[by[0]]++
	}
	log.mu.Unlock()
	check(len(owners) == 3, "records consumed by %v: want every member consuming", owners)
	step("Group: three members joined one after another, each time Stable with 6 partitions assigned once each (cooperative-sticky); %d records each consumed exactly once (by member: %v)",
		len(want), owners)

	ends, err := adm.ListEndOffsets(ctx, topic)
	must(err, "ListOffsets latest")
	waitFor("committed offsets to reach the end offsets", func() error {
		committed, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return err
		}
		var errs []string
		ends.Each(func(e kadm.ListedOffset) {
			o, ok := committed.Lookup(topic, e.Partition)
			if !ok || o.Err != nil || o.At != e.Offset {
				errs = append(errs, fmt.Sprintf("partition %d committed %v (%v), end %d", e.Partition, o.At, o.Err, e.Offset))
			}
		})
		if len(errs) > 0 {
			return errors.New(strings.Join(errs, "; "))
		}
		return nil
	})
	step("OffsetFetch: every partition's committed offset is its end offset")

	lg, err := adm.ListGroups(ctx)
	must(err, "ListGroups")
	l, ok := lg[group]
	check(ok && l.State == "Stable" && l.ProtocolType == "consumer" && l.Coordinator == 0,
		"ListGroups: %s answered %+v (found %v)", group, l, ok)
	step("ListGroups: %s Stable, consumer, coordinator 0", group)

	for _, m := range members {
		m.stop()
	}
	waitFor("the group to be Empty after its members left", func() error {
		ds, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			return err
		}
		if d := ds[group]; d.State != "Empty" || len(d.Members) != 0 {
			return fmt.Errorf("state %s with %d members", d.State, len(d.Members))
		}
		return nil
	})
	committed, err := adm.FetchOffsets(ctx, group)
	must(err, "OffsetFetch after leaving")
	ends.Each(func(e kadm.ListedOffset) {
		o, ok := committed.Lookup(topic, e.Partition)
		check(ok && o.At == e.Offset, "after leaving: partition %d committed %v, end %d", e.Partition, o.At, e.Offset)
	})
	step("members left: group Empty, its offsets kept")
	lags, err := adm.Lag(ctx, group)
	must(err, "Lag")
	lag := lags[group]
	must(lag.Error(), "Lag of "+group)
	check(lag.Lag.Total() == 0 && len(lag.Lag[topic]) == 6, "Lag of the empty group: total %d over %d partitions", lag.Lag.Total(), len(lag.Lag[topic]))
	step("Lag: 0 on each of the 6 partitions")

	deletedOffsets, err := adm.DeleteOffsets(ctx, group, kadm.TopicsSet{topic: {0: {}}})
	must(err, "OffsetDelete")
	must(deletedOffsets.Error(), "OffsetDelete of partition 0")
	committed, err = adm.FetchOffsets(ctx, group)
	must(err, "OffsetFetch after OffsetDelete")
	ends.Each(func(e kadm.ListedOffset) {
		o, ok := committed.Lookup(topic, e.Partition)
		if e.Partition == 0 {
			check(!ok || o.At < 0, "after OffsetDelete of partition 0: still committed at %d", o.At)
		} else {
			check(ok && o.At == e.Offset, "after OffsetDelete of partition 0: partition %d committed %v, end %d", e.Partition, o.At, e.Offset)
		}
	})
	step("OffsetDelete: partition 0's commit gone, the other five kept")

	dg, err := adm.DeleteGroup(ctx, group)
	must(err, "DeleteGroups")
	must(dg.Err, "DeleteGroups")
	lg, err = adm.ListGroups(ctx)
	must(err, "ListGroups")
	check(!slices.Contains(lg.Groups(), group), "ListGroups after DeleteGroups still lists %s", group)
	committed, err = adm.FetchOffsets(ctx, group)
	if err == nil {
		committed.Each(func(o kadm.OffsetResponse) {
			check(o.At < 0, "after DeleteGroups: %s/%d still committed at %d", o.Topic, o.Partition, o.At)
		})
	}
	step("DeleteGroups: gone from ListGroups, no offsets left")
}
