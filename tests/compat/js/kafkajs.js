'use strict'
// KafkaJS 2.2.4, unchanged, against a Conveyor broker.
//
// Every step checks the values the broker answered, not only that a call
// returned:
//   admin     createTopics (an existing name, validateOnly, the broker's
//             partition count by default, a bad name and 3 replicas refused),
//             listTopics, fetchTopicMetadata, describeCluster, describeConfigs
//             (values, sources and synonyms; every setting; the broker),
//             alterConfigs (the topic's settings replaced; validateOnly; bad
//             values and keys refused; a dynamic broker setting followed by a
//             topic, a startup-only one refused), createPartitions (a shrink
//             refused), fetchTopicOffsets, fetchTopicOffsetsByTimestamp
//             (CreateTime and LogAppendTime), deleteTopicRecords, listGroups,
//             describeGroups,
//             fetchOffsets (with metadata), setOffsets, resetOffsets,
//             deleteGroups, deleteTopics; UNKNOWN_TOPIC_OR_PARTITION for each
//             request naming a topic that does not exist;
//   producer  acks -1, 1 and 0, gzip, keys (null and empty), headers
//             (repeated), timestamps, each RecordMetadata's base offset and
//             append time; an idempotent producer (producer id, epoch and
//             sequences read back from the batches); a topic created by a
//             producer's Metadata request; MESSAGE_TOO_LARGE; one request
//             for two topics (sendBatch);
//   consumer  every record read back with its key, value, headers, timestamp
//             and batch, and the high watermark; fetch limits smaller than a
//             batch; a group on a four-partition topic: two members consuming
//             every record exactly once and committing, one leaving and the
//             other taking its partitions from the committed offsets, seeks
//             (one below the low watermark), a member dropped when its session
//             expires and joining again; the assignor every member offers
//             chosen, a member offering none of theirs refused.
//
// Usage: node kafkajs.js --bootstrap 127.0.0.1:PORT
// The broker runs with num.partitions=3, log.segment.bytes=104857600 and a
// group's first rebalance not delayed. Exits 0 and prints OK when every check
// passes. Run by tests/tests/compat_kafkajs.rs.

const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const {
  Kafka,
  logLevel,
  CompressionTypes,
  ConfigResourceTypes,
  ConfigSource,
  AssignerProtocol,
  PartitionAssigners,
  Partitioners,
} = require('kafkajs')
const kafkajsVersion = require('kafkajs/package.json').version

// What the test broker runs with (see the usage above).
const NODE_ID = 0
const BROKER_NUM_PARTITIONS = 3
const BROKER_SEGMENT_BYTES = '104857600'
// Kafka's default, as the broker answers it when nothing overrides it.
const DEFAULT_RETENTION_MS = '604800000'

// Every wait is bounded.
const WAIT_MS = 20000

function parseArgs() {
  const i = process.argv.indexOf('--bootstrap')
  if (i < 0 || !process.argv[i + 1]) {
    console.error('usage: node kafkajs.js --bootstrap HOST:PORT')
    process.exit(2)
  }
  return process.argv[i + 1]
}

const bootstrap = parseArgs()
const [bootstrapHost, bootstrapPort] = bootstrap.split(':')
const suffix = `${process.pid}-${Date.now()}`
const CLIENT_ID = 'conveyor-kafkajs'

const started = Date.now()
function ok(what) {
  const at = ((Date.now() - started) / 1000).toFixed(1).padStart(5)
  console.log(`[${at} s] ok: ${what}`)
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const range = (from, to) => [...Array(to - from).keys()].map(i => i + from)
const sameSet = (a, b) => JSON.stringify([...a].sort()) === JSON.stringify([...b].sort())
const asString = b => (b === null || b === undefined ? null : b.toString())

// Polls `probe` until it answers { done: true }; a timeout names `what` and
// what the probe saw last.
async function waitFor(what, probe, timeoutMs = WAIT_MS) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const last = await probe()
    if (last.done) return
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last saw ${JSON.stringify(last.seen)}`)
    }
    await sleep(100)
  }
}

// A call that must fail with Kafka error `type`. KafkaJS puts it on the
// error, on its cause (retries exhausted) or on each error of an aggregate.
async function rejectsWith(type, what, call) {
  let error
  try {
    await call()
  } catch (e) {
    error = e
  }
  assert.ok(error, `${what}: expected ${type}, the call succeeded`)
  const types = [
    error.type,
    error.cause && error.cause.type,
    ...(error.errors || []).map(e => e.type),
    ...(error.groups || []).map(g => g.error && g.error.type),
  ]
  assert.ok(types.includes(type), `${what}: expected ${type}, got ${error.name}: ${error.message} (${JSON.stringify(types)})`)
  ok(`${what} refused with ${type}`)
}

// Which version of each API KafkaJS chose, printed at the end: KafkaJS
// speaks no flexible versions, so every one is a pre-KIP-482 version.
const versionsUsed = new Map()
function recordRequests(client) {
  client.on(client.events.REQUEST, ({ payload }) => {
    const seen = versionsUsed.get(payload.apiName) || new Set()
    seen.add(payload.apiVersion)
    versionsUsed.set(payload.apiName, seen)
  })
  return client
}

const kafka = new Kafka({
  clientId: CLIENT_ID,
  brokers: [bootstrap],
  logLevel: logLevel.WARN,
  retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 2000 },
})

async function connectedProducer(options = {}) {
  const producer = recordRequests(kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, ...options }))
  await producer.connect()
  return producer
}

async function createTopic(admin, topic, numPartitions, configEntries = []) {
  const created = await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions, configEntries }] })
  assert.equal(created, true, `createTopics ${topic} answers true`)
}

// --- helpers over the admin's answers -------------------------------------

function configMap(resource) {
  return Object.fromEntries(resource.configEntries.map(entry => [entry.configName, entry]))
}

async function describeConfigs(admin, type, name, configNames, includeSynonyms = true) {
  const { resources } = await admin.describeConfigs({ includeSynonyms, resources: [{ type, name, configNames }] })
  assert.equal(resources.length, 1)
  assert.equal(resources[0].errorCode, 0, `describeConfigs ${name}: error ${resources[0].errorCode}`)
  assert.equal(resources[0].resourceName, name)
  return configMap(resources[0])
}

const topicConfigs = (admin, topic, names) => describeConfigs(admin, ConfigResourceTypes.TOPIC, topic, names)

function checkEntry(entries, name, value, source) {
  const entry = entries[name]
  assert.ok(entry, `describeConfigs answered no ${name}: ${JSON.stringify(Object.keys(entries))}`)
  assert.equal(entry.configValue, value, `${name} value`)
  assert.equal(entry.configSource, source, `${name} source`)
  assert.equal(entry.isDefault, source === ConfigSource.DEFAULT_CONFIG, `${name} isDefault`)
  assert.equal(entry.isSensitive, false, `${name} isSensitive`)
}

async function offsetsOf(admin, topic) {
  const offsets = await admin.fetchTopicOffsets(topic)
  return Object.fromEntries(offsets.map(({ partition, offset, high, low }) => [partition, { offset, high, low }]))
}

async function offsetsByTime(admin, topic, ts) {
  const offsets = await admin.fetchTopicOffsetsByTimestamp(topic, ts)
  return Object.fromEntries(offsets.map(p => [p.partition, p.offset]))
}

// The same offset (a string, as KafkaJS answers) on `partitions`.
const everyPartition = (partitions, offset) => Object.fromEntries(range(0, partitions).map(p => [p, String(offset)]))

async function committed(admin, groupId, topic) {
  const answer = await admin.fetchOffsets({ groupId, topics: [topic] })
  assert.equal(answer.length, 1)
  assert.equal(answer[0].topic, topic)
  return Object.fromEntries(answer[0].partitions.map(p => [p.partition, p.offset]))
}

async function waitCommitted(admin, groupId, topic, want) {
  await waitFor(`committed offsets ${JSON.stringify(want)}`, async () => {
    const seen = await committed(admin, groupId, topic)
    return { done: JSON.stringify(seen) === JSON.stringify(want), seen }
  })
}

function decodeAssignment(member) {
  const decoded = AssignerProtocol.MemberAssignment.decode(member.memberAssignment)
  return decoded ? decoded.assignment : {}
}

async function describeGroup(admin, groupId) {
  const { groups } = await admin.describeGroups([groupId])
  assert.equal(groups.length, 1)
  assert.equal(groups[0].groupId, groupId)
  assert.equal(groups[0].errorCode, 0)
  return groups[0]
}

async function listGroupIds(admin) {
  const { groups } = await admin.listGroups()
  return new Map(groups.map(g => [g.groupId, g.protocolType]))
}

// --- admin: topics, metadata, cluster --------------------------------------

// Creates `topic` (3 partitions, retention.ms 1 day) and a topic with the
// broker's partition count; returns the second one's name.
async function createAndList(admin, topic) {
  await createTopic(admin, topic, 3, [{ name: 'retention.ms', value: '86400000' }])
  assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 3 }] }), false)
  ok('createTopics: created, and an existing name answered TOPIC_ALREADY_EXISTS (false)')

  const defaulted = `kjs-default-${suffix}`
  const validateOnly = `kjs-validate-${suffix}`
  assert.equal(await admin.createTopics({ waitForLeaders: true, topics: [{ topic: defaulted }] }), true)
  assert.equal(
    await admin.createTopics({ validateOnly: true, waitForLeaders: false, topics: [{ topic: validateOnly, numPartitions: 2 }] }),
    true
  )
  const listed = await admin.listTopics()
  assert.ok(listed.includes(topic) && listed.includes(defaulted), `listTopics: ${JSON.stringify(listed)}`)
  assert.ok(!listed.includes(validateOnly), 'a validateOnly createTopics created the topic')
  ok('listTopics lists the created topics and not the validateOnly one')

  const { topics } = await admin.fetchTopicMetadata({ topics: [topic, defaulted] })
  const byName = Object.fromEntries(topics.map(t => [t.name, t]))
  for (const [name, count] of [
    [topic, 3],
    [defaulted, BROKER_NUM_PARTITIONS],
  ]) {
    const partitions = byName[name].partitions.slice().sort((a, b) => a.partitionId - b.partitionId)
    assert.deepEqual(
      partitions.map(p => p.partitionId),
      range(0, count),
      `${name}: partition ids`
    )
    for (const p of partitions) {
      assert.equal(p.partitionErrorCode, 0)
      assert.equal(p.leader, NODE_ID)
      assert.deepEqual(p.replicas, [NODE_ID])
      assert.deepEqual(p.isr, [NODE_ID])
    }
  }
  ok(`fetchTopicMetadata: 3 partitions (the broker's ${BROKER_NUM_PARTITIONS} by default), leader, replicas and isr node ${NODE_ID}`)

  const cluster = await admin.describeCluster()
  assert.deepEqual(cluster.brokers, [{ nodeId: NODE_ID, host: bootstrapHost, port: Number(bootstrapPort) }])
  assert.equal(cluster.controller, NODE_ID)
  assert.ok(typeof cluster.clusterId === 'string' && cluster.clusterId.length > 0, `clusterId ${cluster.clusterId}`)
  ok(`describeCluster: one broker ${NODE_ID} at ${bootstrap}, controller ${NODE_ID}, cluster id ${cluster.clusterId}`)
  return defaulted
}

// --- admin: configs and partitions -----------------------------------------

async function describeTopicAndBroker(admin, topic) {
  const entries = await topicConfigs(admin, topic, ['retention.ms', 'cleanup.policy', 'segment.bytes'])
  assert.deepEqual(Object.keys(entries).sort(), ['cleanup.policy', 'retention.ms', 'segment.bytes'])
  checkEntry(entries, 'retention.ms', '86400000', ConfigSource.TOPIC_CONFIG)
  checkEntry(entries, 'cleanup.policy', 'delete', ConfigSource.DEFAULT_CONFIG)
  checkEntry(entries, 'segment.bytes', BROKER_SEGMENT_BYTES, ConfigSource.STATIC_BROKER_CONFIG)
  assert.equal(entries['retention.ms'].readOnly, false)
  const synonyms = entries['segment.bytes'].configSynonyms
  assert.ok(
    synonyms.some(
      s =>
        s.configName === 'log.segment.bytes' &&
        s.configValue === BROKER_SEGMENT_BYTES &&
        s.configSource === ConfigSource.STATIC_BROKER_CONFIG
    ),
    `segment.bytes synonyms: ${JSON.stringify(synonyms)}`
  )
  ok("describeConfigs of the topic: its own retention.ms, the broker's segment.bytes (synonym log.segment.bytes), Kafka's default cleanup.policy")

  const broker = await describeConfigs(admin, ConfigResourceTypes.BROKER, String(NODE_ID), ['num.partitions', 'log.segment.bytes'], false)
  checkEntry(broker, 'num.partitions', String(BROKER_NUM_PARTITIONS), ConfigSource.STATIC_BROKER_CONFIG)
  checkEntry(broker, 'log.segment.bytes', BROKER_SEGMENT_BYTES, ConfigSource.STATIC_BROKER_CONFIG)
  ok('describeConfigs of the broker: num.partitions and log.segment.bytes from its configuration')
  const everything = await describeConfigs(admin, ConfigResourceTypes.BROKER, String(NODE_ID), undefined, false)
  checkEntry(everything, 'log.segment.bytes', BROKER_SEGMENT_BYTES, ConfigSource.STATIC_BROKER_CONFIG)
  assert.ok(Object.values(everything).every(e => e.configSource !== ConfigSource.UNKNOWN), 'a broker setting with an unknown source')
  ok(`describeConfigs of every broker setting: ${Object.keys(everything).length} settings, each with its source`)
}

// A dynamic broker setting (AlterConfigs on the broker resource) followed
// by a topic that does not set its own; replaced by an empty set, gone.
async function alterBroker(admin, topic) {
  const alter = configEntries =>
    admin.alterConfigs({ validateOnly: false, resources: [{ type: ConfigResourceTypes.BROKER, name: String(NODE_ID), configEntries }] })
  const threeDays = '259200000'
  await alter([{ name: 'log.retention.ms', value: threeDays }])
  const broker = await describeConfigs(admin, ConfigResourceTypes.BROKER, String(NODE_ID), ['log.retention.ms'], false)
  checkEntry(broker, 'log.retention.ms', threeDays, ConfigSource.DYNAMIC_BROKER_CONFIG)
  let entries = await topicConfigs(admin, topic, ['retention.ms'])
  checkEntry(entries, 'retention.ms', threeDays, ConfigSource.DYNAMIC_BROKER_CONFIG)
  const synonyms = entries['retention.ms'].configSynonyms
  assert.ok(
    synonyms.some(s => s.configName === 'log.retention.ms' && s.configValue === threeDays && s.configSource === ConfigSource.DYNAMIC_BROKER_CONFIG),
    `retention.ms synonyms: ${JSON.stringify(synonyms)}`
  )
  ok('alterConfigs of the broker: log.retention.ms described back as a dynamic broker setting, and the topic follows it')
  await rejectsWith('INVALID_REQUEST', 'alterConfigs of num.partitions, a broker setting read at startup only', () =>
    alter([{ name: 'num.partitions', value: '7' }])
  )
  await alter([])
  entries = await topicConfigs(admin, topic, ['retention.ms'])
  checkEntry(entries, 'retention.ms', DEFAULT_RETENTION_MS, ConfigSource.DEFAULT_CONFIG)
  ok("alterConfigs of the broker with no settings: the topic is back on Kafka's default")
}

async function alterTopic(admin, topic) {
  const alter = (configEntries, validateOnly = false) =>
    admin.alterConfigs({ validateOnly, resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries }] })
  await alter([{ name: 'retention.ms', value: '1000' }], true)
  let entries = await topicConfigs(admin, topic, ['retention.ms'])
  checkEntry(entries, 'retention.ms', '86400000', ConfigSource.TOPIC_CONFIG)
  ok('alterConfigs validateOnly changed nothing')
  await alter([
    { name: 'retention.ms', value: '172800000' },
    { name: 'max.message.bytes', value: '2000000' },
  ])
  entries = await topicConfigs(admin, topic, ['retention.ms', 'max.message.bytes'])
  checkEntry(entries, 'retention.ms', '172800000', ConfigSource.TOPIC_CONFIG)
  checkEntry(entries, 'max.message.bytes', '2000000', ConfigSource.TOPIC_CONFIG)
  // AlterConfigs replaces the topic's settings: one left out goes back to
  // the default.
  await alter([{ name: 'max.message.bytes', value: '3000000' }])
  entries = await topicConfigs(admin, topic, ['retention.ms', 'max.message.bytes'])
  checkEntry(entries, 'retention.ms', DEFAULT_RETENTION_MS, ConfigSource.DEFAULT_CONFIG)
  checkEntry(entries, 'max.message.bytes', '3000000', ConfigSource.TOPIC_CONFIG)
  ok("alterConfigs: settings described back, and one left out reverted to Kafka's default")
  await rejectsWith('INVALID_CONFIG', 'alterConfigs retention.ms=abc', () => alter([{ name: 'retention.ms', value: 'abc' }]))
  await rejectsWith('INVALID_CONFIG', 'alterConfigs of an unknown key', () => alter([{ name: 'no.such.setting', value: '1' }]))
  entries = await topicConfigs(admin, topic, ['max.message.bytes'])
  checkEntry(entries, 'max.message.bytes', '3000000', ConfigSource.TOPIC_CONFIG)

  // Every setting, when none is named: each with a value and a source.
  const all = await describeConfigs(admin, ConfigResourceTypes.TOPIC, topic, undefined, false)
  const expected = ['cleanup.policy', 'compression.type', 'max.message.bytes', 'message.timestamp.type']
  expected.push('min.insync.replicas', 'retention.bytes', 'retention.ms', 'segment.bytes')
  for (const name of expected) {
    assert.ok(all[name], `describeConfigs of every setting has no ${name}: ${JSON.stringify(Object.keys(all))}`)
  }
  checkEntry(all, 'max.message.bytes', '3000000', ConfigSource.TOPIC_CONFIG)
  checkEntry(all, 'segment.bytes', BROKER_SEGMENT_BYTES, ConfigSource.STATIC_BROKER_CONFIG)
  assert.ok(Object.values(all).every(e => e.configSource !== ConfigSource.UNKNOWN), 'a setting with an unknown source')
  ok(`describeConfigs of every setting: ${Object.keys(all).length} settings, each with its source`)
}

async function growTopic(admin, topic) {
  await admin.createPartitions({ topicPartitions: [{ topic, count: 5 }] })
  const grown = await admin.fetchTopicMetadata({ topics: [topic] })
  assert.deepEqual(grown.topics[0].partitions.map(p => p.partitionId).sort(), range(0, 5))
  ok('createPartitions: 3 -> 5, described back by fetchTopicMetadata')
  await rejectsWith('INVALID_PARTITIONS', 'createPartitions 5 -> 4', () =>
    admin.createPartitions({ topicPartitions: [{ topic, count: 4 }] })
  )
}

async function refusals(admin) {
  const missing = `kjs-missing-${suffix}`
  await rejectsWith('INVALID_TOPIC_EXCEPTION', 'createTopics of a name with a space', () =>
    admin.createTopics({ waitForLeaders: false, topics: [{ topic: 'kjs bad name', numPartitions: 1 }] })
  )
  await rejectsWith('INVALID_REPLICATION_FACTOR', 'createTopics with 3 replicas on one broker', () =>
    admin.createTopics({ waitForLeaders: false, topics: [{ topic: missing, numPartitions: 1, replicationFactor: 3 }] })
  )
  await rejectsWith('UNKNOWN_TOPIC_OR_PARTITION', 'fetchTopicMetadata of a topic that does not exist', () =>
    admin.fetchTopicMetadata({ topics: [missing] })
  )
  await rejectsWith('UNKNOWN_TOPIC_OR_PARTITION', 'describeConfigs of a topic that does not exist', () =>
    admin.describeConfigs({ includeSynonyms: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: missing }] })
  )
  const configEntries = [{ name: 'retention.ms', value: '1000' }]
  await rejectsWith('UNKNOWN_TOPIC_OR_PARTITION', 'alterConfigs of a topic that does not exist', () =>
    admin.alterConfigs({ validateOnly: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: missing, configEntries }] })
  )
  await rejectsWith('UNKNOWN_TOPIC_OR_PARTITION', 'createPartitions of a topic that does not exist', () =>
    admin.createPartitions({ topicPartitions: [{ topic: missing, count: 2 }] })
  )
  // KafkaJS retries this error here; an admin that does not retry gets the
  // broker's answer at once.
  const once = kafka.admin({ retry: { retries: 0 } })
  await once.connect()
  await rejectsWith('UNKNOWN_TOPIC_OR_PARTITION', 'deleteTopics of a topic that does not exist', () =>
    once.deleteTopics({ topics: [missing], timeout: 5000 })
  )
  await once.disconnect()
  assert.ok(!(await admin.listTopics()).includes(missing), 'a refused request created the topic')
}

// --- producer: acks -1, gzip, keys, headers, timestamps -------------------

const PARTITIONS = 5
const SENDS = 3
const PER_SEND = 10
const PER_PARTITION = SENDS * PER_SEND
// Record i of a partition is stamped BASE_TS + i seconds: ten minutes ago,
// well inside retention.
const BASE_TS = Date.now() - 600000

function expectedRecord(p, i) {
  return {
    key: i === 0 ? null : `key-${p}-${i}`,
    value: `value-${p}-${i}-${'x'.repeat(i * 7)}`,
    headers: { index: String(i), partition: String(p), twice: ['first', `second-${i}`] },
    timestamp: String(BASE_TS + i * 1000),
  }
}

async function produceRecords(topic) {
  const producer = await connectedProducer()
  for (let s = 0; s < SENDS; s++) {
    const messages = []
    for (let p = 0; p < PARTITIONS; p++) {
      for (const i of range(s * PER_SEND, (s + 1) * PER_SEND)) messages.push({ partition: p, ...expectedRecord(p, i) })
    }
    const metadata = await producer.send({ topic, acks: -1, compression: CompressionTypes.GZIP, messages })
    assert.equal(metadata.length, PARTITIONS, `send ${s}: ${JSON.stringify(metadata)}`)
    for (const m of metadata) {
      assert.equal(m.topicName, topic)
      assert.equal(m.errorCode, 0)
      assert.equal(m.baseOffset, String(s * PER_SEND), `send ${s} partition ${m.partition} base offset`)
      assert.equal(m.logAppendTime, '-1', 'CreateTime topics answer logAppendTime -1')
      assert.equal(m.logStartOffset, '0')
    }
  }
  await producer.disconnect()
  ok(`produced ${PARTITIONS * PER_PARTITION} records (gzip, acks -1, keys, headers, timestamps), every base offset as expected`)
}

async function produceIdempotent(topic) {
  const producer = await connectedProducer({
    idempotent: true,
    maxInFlightRequests: 1,
    // What KafkaJS asks of an idempotent producer; the test's time limit
    // still bounds it.
    retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 100, maxRetryTime: 2000 },
  })
  for (let s = 0; s < 3; s++) {
    const messages = []
    for (let p = 0; p < 2; p++) {
      for (const i of range(s * 20, (s + 1) * 20)) messages.push({ partition: p, key: `idem-${p}-${i}`, value: `v${i}` })
    }
    const metadata = await producer.send({ topic, acks: -1, messages })
    assert.deepEqual(
      metadata.map(m => [m.partition, m.errorCode, m.baseOffset]).sort(),
      [
        [0, 0, String(s * 20)],
        [1, 0, String(s * 20)],
      ]
    )
  }
  await producer.disconnect()
  ok('idempotent producer: 3 sends of 20 records to 2 partitions, every base offset as expected')
}

// One Produce request for two topics (sendBatch): each topic's partition
// answered with its own base offset.
async function sendBatchTwoTopics(admin) {
  const names = [`kjs-batch-a-${suffix}`, `kjs-batch-b-${suffix}`]
  for (const t of names) await createTopic(admin, t, 1)
  const producer = await connectedProducer()
  const counts = [2, 3]
  for (let s = 0; s < 2; s++) {
    const topicMessages = names.map((topic, t) => ({
      topic,
      messages: range(0, counts[t]).map(i => ({ key: `${t}-${s}-${i}`, value: `batch ${s} record ${i}` })),
    }))
    const metadata = await producer.sendBatch({ acks: -1, compression: CompressionTypes.GZIP, topicMessages })
    assert.deepEqual(
      metadata.map(m => [m.topicName, m.partition, m.errorCode, m.baseOffset]).sort(),
      names.map((topic, t) => [topic, 0, 0, String(s * counts[t])]).sort()
    )
  }
  await producer.disconnect()
  for (const [t, topic] of names.entries()) {
    assert.deepEqual((await offsetsOf(admin, topic))[0], { offset: String(2 * counts[t]), high: String(2 * counts[t]), low: '0' })
  }
  ok('sendBatch: one Produce request for two topics, twice; each answered its own base offset, the high watermarks 4 and 6')
  return names
}

function checkIdempotent(idem) {
  const producerIds = new Set(idem.map(r => r.message.batchContext.producerId))
  assert.equal(producerIds.size, 1, `one producer id: ${JSON.stringify([...producerIds])}`)
  const [producerId] = producerIds
  assert.ok(Number(producerId) >= 0, `idempotent batches carry a producer id, got ${producerId}`)
  for (const { partition, message } of idem) {
    const i = Number(message.offset)
    assert.equal(asString(message.key), `idem-${partition}-${i}`)
    assert.equal(asString(message.value), `v${i}`)
    assert.equal(message.batchContext.producerEpoch, 0)
    assert.equal(message.batchContext.firstSequence, i - (i % 20), `${partition}:${i} batch first sequence`)
  }
  ok(`idempotent records read back: producer id ${producerId}, epoch 0, each batch's first sequence its base offset`)
}

// --- a LogAppendTime topic: acks 1 and 0, a batch too large --------------

const EDGE_MAX_MESSAGE_BYTES = 10000

async function produceEdges(admin, topic) {
  await createTopic(admin, topic, 1, [
    { name: 'message.timestamp.type', value: 'LogAppendTime' },
    { name: 'max.message.bytes', value: String(EDGE_MAX_MESSAGE_BYTES) },
  ])
  const producer = await connectedProducer()
  const before = Date.now()
  const gzip = CompressionTypes.GZIP
  const [first] = await producer.send({
    topic,
    acks: -1,
    compression: gzip,
    messages: [
      { key: 'a', value: '0', timestamp: '1000' },
      { key: 'b', value: '1', timestamp: '2000' },
    ],
  })
  const [second] = await producer.send({ topic, acks: 1, messages: [{ key: 'c', value: '2', timestamp: '3000' }] })
  // acks 0: the broker must not answer; KafkaJS returns nothing.
  assert.deepEqual(await producer.send({ topic, acks: 0, messages: [{ key: 'd', value: '3' }] }), [])
  // An empty key is not a null one; a null value is a tombstone.
  const [third] = await producer.send({
    topic,
    acks: 1,
    messages: [
      { key: 'e', value: '4' },
      { key: '', value: null },
    ],
  })
  const after = Date.now()
  assert.deepEqual([first.baseOffset, second.baseOffset, third.baseOffset], ['0', '2', '4'])
  for (const m of [first, second, third]) {
    const t = Number(m.logAppendTime)
    assert.ok(t >= before - 1000 && t <= after + 1000, `logAppendTime ${t} not within [${before}, ${after}]`)
  }
  ok("LogAppendTime topic: acks -1, 1 and 0 appended at offsets 0-1, 2, 3 and 4-5; each RecordMetadata carries the broker's append time")
  const big = crypto.randomBytes(2 * EDGE_MAX_MESSAGE_BYTES)
  await rejectsWith('MESSAGE_TOO_LARGE', `a ${big.length}-byte batch on a topic with max.message.bytes=${EDGE_MAX_MESSAGE_BYTES}`, () =>
    producer.send({ topic, acks: -1, messages: [{ key: 'big', value: big }] })
  )
  await producer.disconnect()
  return { appendTimes: [first, first, second, null, third, third].map(m => m && m.logAppendTime), before, after }
}

async function checkEdges(admin, topic, edges, got) {
  assert.deepEqual(
    got.map(m => [m.offset, asString(m.key), asString(m.value)]),
    [
      ['0', 'a', '0'],
      ['1', 'b', '1'],
      ['2', 'c', '2'],
      ['3', 'd', '3'],
      ['4', 'e', '4'],
      ['5', '', null],
    ]
  )
  got.forEach((m, i) => {
    assert.equal(m.batchContext.timestampType, 1, 'LogAppendTime batches')
    const want = edges.appendTimes[i]
    if (want !== null) assert.equal(m.timestamp, want, `record ${i}: its batch's append time`)
    const t = Number(m.timestamp)
    assert.ok(t >= edges.before - 1000 && t <= edges.after + 1000, `record ${i} timestamp ${t}`)
  })
  ok("LogAppendTime records read back stamped with the append time answered, the producer's timestamps replaced; the batch too large is not there")
  // ListOffsets by time looks at the append times, not the producer's.
  const byTime = async ts => (await offsetsByTime(admin, topic, ts))[0]
  const [t0, , t2, , , t5] = edges.appendTimes.map(Number)
  assert.equal(await byTime(1500), '0', 'before every append time')
  assert.equal(await byTime(t0), '0')
  assert.equal(await byTime(t2), t0 >= t2 ? '0' : '2', "the second batch's append time")
  assert.equal(await byTime(t5 + 1), '6', 'after every append time: -1, which KafkaJS answers with the high watermark')
  ok('fetchTopicOffsetsByTimestamp on the LogAppendTime topic finds records by their append times')
}

// --- fetch limits smaller than a batch, on an auto-created topic ----------

async function produceIncompressible(admin, topic) {
  const producer = await connectedProducer({ allowAutoTopicCreation: true })
  // Random bytes do not compress: each batch is about 6 KB, six times the
  // consumer's limit per partition.
  const values = {}
  for (let s = 0; s < 4; s++) {
    const messages = []
    for (let p = 0; p < BROKER_NUM_PARTITIONS; p++) {
      for (const i of range(s * 2, s * 2 + 2)) {
        values[`${p}:${i}`] = crypto.randomBytes(3000)
        messages.push({ partition: p, key: `${p}:${i}`, value: values[`${p}:${i}`] })
      }
    }
    const metadata = await producer.send({ topic, acks: -1, messages })
    assert.deepEqual(
      metadata.map(m => m.baseOffset),
      Array(BROKER_NUM_PARTITIONS).fill(String(s * 2))
    )
  }
  await producer.disconnect()
  const { topics } = await admin.fetchTopicMetadata({ topics: [topic] })
  assert.equal(topics[0].partitions.length, BROKER_NUM_PARTITIONS)
  ok(`a producer's Metadata request created ${topic} with the broker's ${BROKER_NUM_PARTITIONS} partitions`)
  return values
}

async function smallFetches(admin) {
  const topic = `kjs-auto-created-${suffix}`
  const values = await produceIncompressible(admin, topic)
  const groupId = `kjs-small-fetch-${suffix}`
  const consumer = recordRequests(
    kafka.consumer({ groupId, maxBytesPerPartition: 1024, maxBytes: 2048, maxWaitTimeInMs: 300, heartbeatInterval: 500 })
  )
  const got = []
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      got.push({ partition, offset: message.offset, key: asString(message.key), value: message.value })
    },
  })
  const total = Object.keys(values).length
  await waitFor(`${total} records through fetches smaller than a batch`, async () => ({ done: got.length >= total, seen: got.length }))
  await sleep(300)
  await consumer.disconnect()
  assert.equal(got.length, total, 'each record once')
  for (let p = 0; p < BROKER_NUM_PARTITIONS; p++) {
    const offsets = got.filter(r => r.partition === p).map(r => Number(r.offset))
    assert.deepEqual(offsets, range(0, 8), `partition ${p} in order`)
  }
  for (const r of got) {
    assert.equal(r.key, `${r.partition}:${r.offset}`)
    assert.ok(r.value.equals(values[r.key]), `${r.key}: the value read back differs`)
  }
  ok(`${total} records of 3000 random bytes read back whole with maxBytesPerPartition 1024 and maxBytes 2048`)
  return { topic, groupId }
}

// --- a consumer reading everything back ------------------------------------

// One member reads the three topics from the beginning; returns what it was
// given and the high watermark each fetch answered.
async function readAll(consumer, { topic, idemTopic, edgeTopic }) {
  const seen = new Map()
  const idem = []
  const edgeRecords = []
  const highWatermarks = {}
  await consumer.connect()
  await consumer.subscribe({ topics: [topic, idemTopic, edgeTopic], fromBeginning: true })
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      highWatermarks[`${batch.topic}:${batch.partition}`] = batch.highWatermark
      for (const message of batch.messages) {
        if (batch.topic === idemTopic) {
          idem.push({ partition: batch.partition, message })
        } else if (batch.topic === edgeTopic) {
          edgeRecords.push(message)
        } else {
          const id = `${batch.partition}:${message.offset}`
          assert.ok(!seen.has(id), `record ${id} delivered twice`)
          seen.set(id, message)
        }
      }
    },
  })
  const total = PARTITIONS * PER_PARTITION
  await waitFor(`${total} records, 120 idempotent ones and 6 LogAppendTime ones`, async () => ({
    done: seen.size === total && idem.length === 120 && edgeRecords.length === 6,
    seen: [seen.size, idem.length, edgeRecords.length],
  }))
  const wantHigh = { [`${edgeTopic}:0`]: '6', [`${idemTopic}:0`]: '60', [`${idemTopic}:1`]: '60' }
  for (let p = 0; p < PARTITIONS; p++) wantHigh[`${topic}:${p}`] = String(PER_PARTITION)
  assert.deepEqual(highWatermarks, wantHigh, 'the high watermark each fetch answered')
  ok('every fetch answered the high watermark of its partition')
  return { seen, idem, edgeRecords }
}

function checkRecords(seen) {
  for (let p = 0; p < PARTITIONS; p++) {
    for (let i = 0; i < PER_PARTITION; i++) {
      const got = seen.get(`${p}:${i}`)
      assert.ok(got, `partition ${p} offset ${i} not consumed`)
      const want = expectedRecord(p, i)
      assert.equal(asString(got.key), want.key, `${p}:${i} key`)
      assert.equal(asString(got.value), want.value, `${p}:${i} value`)
      const headers = Object.fromEntries(
        Object.entries(got.headers).map(([k, v]) => [k, Array.isArray(v) ? v.map(asString) : asString(v)])
      )
      assert.deepEqual(headers, want.headers, `${p}:${i} headers`)
      assert.equal(got.timestamp, want.timestamp, `${p}:${i} timestamp`)
      assert.equal(got.magicByte, 2)
      assert.equal(got.batchContext.timestampType, 0, 'CreateTime')
      assert.equal(got.batchContext.producerId, '-1', 'a plain producer has no producer id')
      // One send is one batch per partition.
      assert.equal(got.batchContext.firstOffset, String(i - (i % PER_SEND)), `${p}:${i} batch base offset`)
    }
  }
  ok(`consumed all ${seen.size} records back: keys (one null), values, repeated headers, timestamps, batch offsets`)
}

// While the reader is a member: its commits read back, its group listed and
// described, resetOffsets refused.
async function readerGroup(admin, consumer, groupId, { topic, idemTopic, edgeTopic }) {
  // Partition 0 commits no metadata, the others a string of their own.
  const commitMetadata = p => (p === 0 ? null : `reader checkpoint ${p}`)
  const partitions = range(0, PARTITIONS)
  await consumer.commitOffsets(
    partitions.map(p => ({ topic, partition: p, offset: String(PER_PARTITION - p), metadata: commitMetadata(p) }))
  )
  const [fetched] = await admin.fetchOffsets({ groupId, topics: [topic] })
  assert.deepEqual(
    fetched.partitions.slice().sort((a, b) => a.partition - b.partition),
    partitions.map(p => ({ partition: p, offset: String(PER_PARTITION - p), metadata: commitMetadata(p) }))
  )
  await consumer.commitOffsets(partitions.map(p => ({ topic, partition: p, offset: String(PER_PARTITION) })))
  assert.deepEqual(await committed(admin, groupId, topic), everyPartition(PARTITIONS, PER_PARTITION))
  // No topics named: KafkaJS sends a null array, every topic the group
  // committed.
  const everyTopic = await admin.fetchOffsets({ groupId })
  assert.deepEqual(
    everyTopic.map(t => [t.topic, t.partitions.map(p => [p.partition, p.offset]).sort()]),
    [[topic, partitions.map(p => [p, String(PER_PARTITION)])]]
  )
  ok(`commitOffsets: offsets and metadata read back by fetchOffsets, then ${PER_PARTITION} on each partition, also with no topic named`)

  const groups = await listGroupIds(admin)
  assert.equal(groups.get(groupId), 'consumer', `listGroups: ${JSON.stringify([...groups])}`)
  const described = await describeGroup(admin, groupId)
  assert.equal(described.state, 'Stable')
  assert.equal(described.protocolType, 'consumer')
  assert.equal(described.protocol, 'RoundRobinAssigner')
  assert.equal(described.members.length, 1)
  assert.equal(described.members[0].clientId, CLIENT_ID)
  const assignment = decodeAssignment(described.members[0])
  assert.deepEqual(assignment[topic].slice().sort(), partitions)
  assert.deepEqual(assignment[idemTopic].slice().sort(), [0, 1])
  assert.deepEqual(assignment[edgeTopic], [0])
  ok('listGroups and describeGroups: Stable, one member with every partition of the three topics')
  await assert.rejects(admin.resetOffsets({ groupId, topic }), /must have no running instances, current state: Stable/)
  ok('resetOffsets while the group runs refused: the group is Stable')
}

async function readBack(admin, topics, edges) {
  const groupId = `kjs-reader-${suffix}`
  const consumer = recordRequests(kafka.consumer({ groupId, heartbeatInterval: 500, sessionTimeout: 6000, maxWaitTimeInMs: 500 }))
  const { seen, idem, edgeRecords } = await readAll(consumer, topics)
  checkRecords(seen)
  checkIdempotent(idem)
  await checkEdges(admin, topics.edgeTopic, edges, edgeRecords)
  await readerGroup(admin, consumer, groupId, topics)
  await consumer.disconnect()
  const empty = await describeGroup(admin, groupId)
  assert.equal(empty.state, 'Empty')
  assert.deepEqual(empty.members, [])
  ok('after the member left: describeGroups Empty, no members')
  return groupId
}

// --- offsets: by time, records deleted, a group's offsets set and reset ----

async function offsets(admin, topic, groupId) {
  const all = await offsetsOf(admin, topic)
  for (let p = 0; p < PARTITIONS; p++) {
    assert.deepEqual(all[p], { offset: String(PER_PARTITION), high: String(PER_PARTITION), low: '0' }, `partition ${p}`)
  }
  ok(`fetchTopicOffsets: high ${PER_PARTITION}, low 0 on every partition`)

  const every = offset => everyPartition(PARTITIONS, offset)
  assert.deepEqual(await offsetsByTime(admin, topic, BASE_TS + 15000), every(15), 'the record stamped exactly then')
  assert.deepEqual(await offsetsByTime(admin, topic, BASE_TS + 15500), every(16), 'the first record stamped after')
  assert.deepEqual(await offsetsByTime(admin, topic, BASE_TS - 60000), every(0), 'before every record')
  // No record that late: the broker answers -1 and KafkaJS the high watermark.
  assert.deepEqual(await offsetsByTime(admin, topic, BASE_TS + 3600000), every(PER_PARTITION), 'after every record')
  ok('fetchTopicOffsetsByTimestamp: the first record at or after the time, in the middle of gzip batches')

  await admin.deleteTopicRecords({
    topic,
    partitions: [
      { partition: 0, offset: '13' },
      { partition: 1, offset: '-1' },
    ],
  })
  const after = await offsetsOf(admin, topic)
  assert.equal(after[0].low, '13')
  assert.equal(after[1].low, String(PER_PARTITION))
  assert.equal(after[2].low, '0')
  assert.equal(after[0].high, String(PER_PARTITION))
  ok('deleteTopicRecords: partition 0 below 13, partition 1 all (-1); the low watermarks follow')

  // Each of these waits out KafkaJS's own fetch wait (5 s) in the consumer
  // it makes to commit.
  await admin.setOffsets({ groupId, topic, partitions: [{ partition: 2, offset: '7' }] })
  assert.equal((await committed(admin, groupId, topic))[2], '7')
  ok('setOffsets: 7 on partition 2, read back')
  await admin.resetOffsets({ groupId, topic, earliest: true })
  assert.deepEqual(await committed(admin, groupId, topic), every(-2))
  ok('resetOffsets earliest: -2 committed on every partition')
}

// --- a consumer group on a four-partition topic ----------------------------

const GROUP_PARTITIONS = 4
const ALL = range(0, GROUP_PARTITIONS)

// An assignor no other member offers: a group must never choose it, so
// assigning with it fails the run.
const LONE_ASSIGNER = 'KjsLoneAssigner'
const loneAssigner = () => ({
  name: LONE_ASSIGNER,
  version: 1,
  protocol: ({ topics }) => ({ name: LONE_ASSIGNER, metadata: AssignerProtocol.MemberMetadata.encode({ version: 1, topics }) }),
  assign: async () => {
    throw new Error(`the broker chose ${LONE_ASSIGNER}, which not every member offers`)
  },
})

// A group member logging every record it is given. With `hold`, it stops in
// its first record at offset `hold.offset` until `hold.until` resolves: KafkaJS
// sends no heartbeat meanwhile, so its session can expire.
function member(g, name, { sessionTimeout = 6000, hold = null, partitionAssigners = [PartitionAssigners.roundRobin] } = {}) {
  const consumer = recordRequests(
    kafka.consumer({
      groupId: g.groupId,
      heartbeatInterval: 300,
      sessionTimeout,
      rebalanceTimeout: 10000,
      maxWaitTimeInMs: 300,
      partitionAssigners,
    })
  )
  const state = { name, consumer, assignment: [], memberId: null, joins: 0, crash: null }
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    state.assignment = (payload.memberAssignment[g.topic] || []).slice().sort()
    state.memberId = payload.memberId
    state.joins++
  })
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    state.crash = payload.error
    if (!state.crashExpected) console.error(`${name} crashed: ${payload.error && payload.error.stack}`)
  })
  state.start = async () => {
    await consumer.connect()
    await consumer.subscribe({ topic: g.topic, fromBeginning: true })
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        const offset = Number(message.offset)
        g.log.push({ member: name, partition, offset, key: asString(message.key), value: asString(message.value) })
        if (hold && offset === hold.offset && !hold.held) {
          hold.held = { partition, at: Date.now() }
          await hold.until
        }
      },
    })
  }
  return state
}

// Records [from, from + count) on every partition.
async function produceGroupRecords(g, from, count) {
  const producer = await connectedProducer()
  const messages = []
  for (const p of ALL) {
    for (const i of range(from, from + count)) messages.push({ partition: p, key: `g-${p}-${i}`, value: `group record ${p}/${i}` })
  }
  const metadata = await producer.send({ topic: g.topic, acks: -1, compression: CompressionTypes.GZIP, messages })
  for (const m of metadata) assert.equal(m.baseOffset, String(from), `partition ${m.partition} base offset`)
  await producer.disconnect()
}

// Records [from, to) of every partition delivered exactly once among
// `entries`, with their keys and values, and nothing else.
function exactlyOnce(entries, from, to, what) {
  const ids = entries.map(e => `${e.partition}:${e.offset}`)
  assert.equal(new Set(ids).size, ids.length, `${what}: a record delivered twice`)
  const want = ALL.flatMap(p => range(from, to).map(i => `${p}:${i}`))
  assert.deepEqual(ids.slice().sort(), want.sort(), `${what}: the records delivered`)
  for (const e of entries) {
    assert.equal(e.key, `g-${e.partition}-${e.offset}`)
    assert.equal(e.value, `group record ${e.partition}/${e.offset}`)
  }
}

// Produces [from, to) on every partition and checks each record went
// exactly once to the member owning its partition.
async function consumeExactlyOnce(g, from, to, members, what) {
  g.log.length = 0
  await produceGroupRecords(g, from, to - from)
  const total = GROUP_PARTITIONS * (to - from)
  await waitFor(`${total} records consumed ${what}`, async () => ({ done: g.log.length >= total, seen: g.log.length }))
  await sleep(1000)
  exactlyOnce(g.log, from, to, what)
  const owners = Object.fromEntries(members.map(m => [m.name, m]))
  for (const e of g.log) {
    assert.ok(owners[e.member].assignment.includes(e.partition), `${e.member} consumed partition ${e.partition} it was not assigned`)
  }
  await waitCommitted(g.admin, g.groupId, g.topic, everyPartition(GROUP_PARTITIONS, to))
}

// Waits until `a` and `b` (and `also()`) each hold some partitions and
// together every partition.
async function waitShared(a, b, what, also = () => true) {
  await waitFor(what, async () => ({
    done: also() && a.assignment.length > 0 && b.assignment.length > 0 && sameSet([...a.assignment, ...b.assignment], ALL),
    seen: [a.assignment, b.assignment],
  }))
}

async function waitTakesAll(m, joinsBefore, what) {
  await waitFor(what, async () => ({
    done: m.joins > joinsBefore && sameSet(m.assignment, ALL),
    seen: [m.joins, m.assignment],
  }))
}

async function checkMembers(g, members) {
  const described = await describeGroup(g.admin, g.groupId)
  assert.equal(described.state, 'Stable')
  assert.equal(described.protocol, 'RoundRobinAssigner', 'the one assignor every member offers')
  assert.deepEqual(
    described.members.map(m => [m.memberId, (decodeAssignment(m)[g.topic] || []).slice().sort()]).sort(),
    members.map(m => [m.memberId, m.assignment]).sort()
  )
  for (const m of described.members) {
    assert.deepEqual(AssignerProtocol.MemberMetadata.decode(m.memberMetadata).topics, [g.topic], "each member's subscription")
    assert.equal(m.clientId, CLIENT_ID)
    assert.equal(m.clientHost, '/127.0.0.1', "Kafka writes the member's address as /IP")
  }
}

async function twoMembersThenOne(g) {
  const one = member(g, 'one')
  const two = member(g, 'two')
  await one.start()
  await two.start()
  await waitShared(one, two, 'both members assigned some partitions')
  await checkMembers(g, [one, two])
  ok(`two members joined: one has ${JSON.stringify(one.assignment)}, two has ${JSON.stringify(two.assignment)}; describeGroups agrees, with each subscription and client`)
  await consumeExactlyOnce(g, 0, 100, [one, two], 'by two members')
  ok('400 records consumed exactly once, each by the member owning its partition; 100 committed on each partition')

  const taken = two.assignment
  const joinsBefore = one.joins
  await two.consumer.disconnect()
  await waitTakesAll(one, joinsBefore, 'member one to take every partition')
  await checkMembers(g, [one])
  ok(`member two left: a rebalance gave member one its partitions ${JSON.stringify(taken)} too`)
  await consumeExactlyOnce(g, 100, 150, [one], 'after the rebalance')
  ok('200 more records consumed exactly once by member one, the taken partitions from their committed offsets')
  return { one, taken }
}

// Seeks `m` on `partition` to `offset` and checks it is given that
// partition's records from `first` to 149 again, in order, and nothing else.
async function seekAndCheck(g, m, partition, offset, first) {
  g.log.length = 0
  m.consumer.seek({ topic: g.topic, partition, offset })
  const count = 150 - first
  await waitFor(`partition ${partition} read again from ${first}`, async () => ({
    done: g.log.length >= count,
    seen: g.log.length,
  }))
  await sleep(500)
  assert.deepEqual(
    g.log.map(e => [e.partition, e.offset]),
    range(first, 150).map(i => [partition, i]),
    `the records after seeking partition ${partition} to ${offset}, in order, once each`
  )
}

async function seeks(g, one, taken) {
  await seekAndCheck(g, one, taken[0], '10', 10)
  ok(`seek: partition ${taken[0]} read again from offset 10 to 149, in order`)
  // Below the low watermark: the broker answers OFFSET_OUT_OF_RANGE and
  // KafkaJS starts again from the earliest offset left.
  await g.admin.deleteTopicRecords({ topic: g.topic, partitions: [{ partition: taken[1], offset: '20' }] })
  await seekAndCheck(g, one, taken[1], '5', 20)
  ok(`seek below the low watermark (records below 20 deleted): partition ${taken[1]} read again from 20 to 149`)
  await waitCommitted(g.admin, g.groupId, g.topic, everyPartition(GROUP_PARTITIONS, 150))
  ok('150 committed on every partition, read back by fetchOffsets')
}

// A third member joins, then stops heartbeating inside a record: when its
// session expires the broker drops it, member one takes its partitions and
// reads again what it had not committed; let go, the third member finds
// itself unknown and joins again.
async function sessionExpires(g, one) {
  let release
  const hold = { offset: 150, until: new Promise(resolve => (release = resolve)) }
  // It offers an assignor the others do not, first: the group must still
  // choose the one they all offer.
  const partitionAssigners = [loneAssigner, PartitionAssigners.roundRobin]
  const three = member(g, 'three', { sessionTimeout: 2000, hold, partitionAssigners })
  await three.start()
  await waitShared(one, three, 'members one and three to share the partitions')
  const firstMemberId = three.memberId
  ok(`member three joined: it has ${JSON.stringify(three.assignment)}, member one ${JSON.stringify(one.assignment)}`)

  g.log.length = 0
  const joinsBeforeExpiry = one.joins
  await produceGroupRecords(g, 150, 1)
  await waitFor('member three to stop in a record', async () => ({ done: hold.held !== undefined, seen: g.log }))
  await waitTakesAll(one, joinsBeforeExpiry, "member one to take every partition after member three's session expired")
  const expiredAfter = Date.now() - hold.held.at
  await waitCommitted(g.admin, g.groupId, g.topic, everyPartition(GROUP_PARTITIONS, 151))
  await checkMembers(g, [one])
  // Member three was given only the record it stopped in; member one read
  // each partition's record once, that one again (never committed).
  assert.deepEqual(
    g.log.filter(e => e.member === 'three').map(e => [e.partition, e.offset]),
    [[hold.held.partition, 150]]
  )
  exactlyOnce(g.log.filter(e => e.member === 'one'), 150, 151, 'after the session expired')
  ok(`member three, silent in a record, was dropped ${(expiredAfter / 1000).toFixed(1)} s later; member one took its partitions and read the uncommitted record again`)

  const threeJoins = three.joins
  release()
  await waitShared(one, three, 'member three to join again', () => three.joins > threeJoins)
  assert.notEqual(three.memberId, firstMemberId, 'a dropped member joins again with a new member id')
  await checkMembers(g, [one, three])
  await consumeExactlyOnce(g, 151, 171, [one, three], 'after member three joined again')
  ok(`member three joined again (a new member id, ${JSON.stringify(three.assignment)}); 80 more records consumed exactly once, 171 committed on every partition`)
  return three
}

// A member offering only an assignor no other member offers is refused
// INCONSISTENT_GROUP_PROTOCOL, and the group goes on without a rebalance.
async function inconsistentProtocol(g, members) {
  const joins = members.map(m => m.joins)
  const four = member(g, 'four', { partitionAssigners: [loneAssigner] })
  four.crashExpected = true
  await four.start()
  await waitFor('member four to be refused', async () => ({ done: four.crash !== null, seen: four.joins }))
  let cause = four.crash
  while (cause.cause) cause = cause.cause
  assert.equal(cause.type, 'INCONSISTENT_GROUP_PROTOCOL', `member four: ${four.crash.stack}`)
  assert.equal(four.joins, 0)
  await sleep(1000)
  assert.deepEqual(members.map(m => m.joins), joins, 'a refused member caused a rebalance')
  await checkMembers(g, members)
  ok('a member offering only an assignor the group does not use refused with INCONSISTENT_GROUP_PROTOCOL; no rebalance')
}

async function consumerGroup(admin, topic) {
  await createTopic(admin, topic, GROUP_PARTITIONS)
  const g = { admin, topic, groupId: `kjs-group-${suffix}`, log: [] }
  const { one, taken } = await twoMembersThenOne(g)
  await seeks(g, one, taken)
  const three = await sessionExpires(g, one)
  await inconsistentProtocol(g, [one, three])
  await three.consumer.disconnect()
  await one.consumer.disconnect()
  return g.groupId
}

// --- deleting what the run made --------------------------------------------

async function cleanUp(admin, groupIds, topics) {
  const deleted = await admin.deleteGroups(groupIds)
  assert.deepEqual(
    deleted.map(g => [g.groupId, g.errorCode]).sort(),
    groupIds.map(g => [g, 0]).sort()
  )
  const listed = await listGroupIds(admin)
  for (const g of groupIds) {
    assert.ok(!listed.has(g), `listGroups after deleteGroups still lists ${g}`)
    assert.equal((await describeGroup(admin, g)).state, 'Dead')
  }
  ok(`deleteGroups: ${groupIds.length} groups gone from listGroups, described Dead`)
  await rejectsWith('GROUP_ID_NOT_FOUND', 'deleteGroups of a group that does not exist', () =>
    admin.deleteGroups([`kjs-missing-${suffix}`])
  )

  await admin.deleteTopics({ topics, timeout: 10000 })
  const left = await admin.listTopics()
  for (const t of topics) assert.ok(!left.includes(t), `listTopics after deleteTopics still lists ${t}`)
  await rejectsWith('UNKNOWN_TOPIC_OR_PARTITION', 'fetchTopicMetadata of a deleted topic', () =>
    admin.fetchTopicMetadata({ topics: [topics[0]] })
  )
  ok(`deleteTopics: ${topics.length} topics gone from listTopics`)
}

async function main() {
  console.log(`KafkaJS ${kafkajsVersion} against ${bootstrap}`)
  const admin = recordRequests(kafka.admin())
  await admin.connect()
  const topics = {
    topic: `kjs-records-${suffix}`,
    idemTopic: `kjs-idempotent-${suffix}`,
    edgeTopic: `kjs-append-time-${suffix}`,
  }
  const groupTopic = `kjs-group-${suffix}`

  const defaulted = await createAndList(admin, topics.topic)
  await describeTopicAndBroker(admin, topics.topic)
  await alterTopic(admin, topics.topic)
  await alterBroker(admin, topics.topic)
  await growTopic(admin, topics.topic)
  await refusals(admin)
  await produceRecords(topics.topic)
  await createTopic(admin, topics.idemTopic, 2)
  await produceIdempotent(topics.idemTopic)
  const batchTopics = await sendBatchTwoTopics(admin)
  const edges = await produceEdges(admin, topics.edgeTopic)
  const reader = await readBack(admin, topics, edges)
  const small = await smallFetches(admin)
  // Independent (their own topics and groups), so they overlap: setOffsets
  // and resetOffsets spend most of their time waiting.
  const [, group] = await Promise.all([offsets(admin, topics.topic, reader), consumerGroup(admin, groupTopic)])
  await cleanUp(admin, [reader, group, small.groupId], [...Object.values(topics), ...batchTopics, groupTopic, defaulted, small.topic])
  await admin.disconnect()

  const used = [...versionsUsed].map(([api, v]) => `${api} v${[...v].sort().join('/')}`).sort()
  console.log(`API versions KafkaJS used: ${used.join(', ')}`)
  console.log('OK')
}

main().catch(e => {
  console.error(`FAIL: ${e.stack || e}`)
  process.exit(1)
})
