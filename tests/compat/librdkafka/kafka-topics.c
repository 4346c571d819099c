/*
 * A stand-in for Apache Kafka's bin/kafka-topics.sh, for the librdkafka tests
 * that shell out to it (test_kafka_topics() in tests/test.c runs
 * "$KAFKA_PATH/bin/kafka-topics.sh --bootstrap-server $BROKERS ...").
 *
 * Kafka's script runs TopicCommand, which sends the same CreateTopics,
 * CreatePartitions and DeleteTopics requests through the Java Admin client;
 * this sends them through librdkafka's Admin API. Only what the tests use is
 * understood:
 *
 *   --create --topic T --partitions N --replication-factor R [--config K=V]...
 *   --alter --topic T --partitions N
 *   --delete --topic T
 *
 * Exits 0 when the broker answered no error for the topic, 1 otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdkafka.h"

#define MAX_CONFIGS 32
/* How long the broker has to answer, as Kafka's script waits. */
#define TIMEOUT_MS 30000

static void usage(const char *why) {
        fprintf(stderr, "kafka-topics.sh stand-in: %s\n", why);
        exit(2);
}

int main(int argc, char **argv) {
        const char *bootstrap = NULL, *topic = NULL, *op = NULL;
        int partitions = -1, replication = -1, nconfigs = 0, i;
        char *configs[MAX_CONFIGS];
        char errstr[512];
        rd_kafka_conf_t *conf;
        rd_kafka_t *rk;
        rd_kafka_queue_t *queue;
        rd_kafka_event_t *ev;
        const rd_kafka_topic_result_t **results = NULL;
        size_t nresults = 0;
        int failed = 0;

        for (i = 1; i < argc; i++) {
                const char *arg = argv[i];
                const char *val = i + 1 < argc ? argv[i + 1] : NULL;
                if (!strcmp(arg, "--create") || !strcmp(arg, "--alter") ||
                    !strcmp(arg, "--delete"))
                        op = arg + 2;
                else if (!val)
                        usage("an option is missing its value");
                else if (!strcmp(arg, "--bootstrap-server"))
                        bootstrap = argv[++i];
                else if (!strcmp(arg, "--topic"))
                        topic = argv[++i];
                else if (!strcmp(arg, "--partitions"))
                        partitions = atoi(argv[++i]);
                else if (!strcmp(arg, "--replication-factor"))
                        replication = atoi(argv[++i]);
                else if (!strcmp(arg, "--config") && nconfigs < MAX_CONFIGS)
                        configs[nconfigs++] = argv[++i];
                else
                        usage(arg);
        }
        if (!bootstrap || !topic || !op)
                usage("needs --bootstrap-server, --topic and one of "
                      "--create, --alter, --delete");

        conf = rd_kafka_conf_new();
        if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr,
                              sizeof(errstr)) != RD_KAFKA_CONF_OK)
                usage(errstr);
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!rk)
                usage(errstr);
        queue = rd_kafka_queue_new(rk);

        if (!strcmp(op, "create")) {
                rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(
                    topic, partitions, replication, errstr, sizeof(errstr));
                if (!nt)
                        usage(errstr);
                for (i = 0; i < nconfigs; i++) {
                        char *eq = strchr(configs[i], '=');
                        if (!eq)
                                usage("--config needs KEY=VALUE");
                        *eq = '\0';
                        rd_kafka_NewTopic_set_config(nt, configs[i], eq + 1);
                }
                rd_kafka_CreateTopics(rk, &nt, 1, NULL, queue);
                rd_kafka_NewTopic_destroy(nt);
        } else if (!strcmp(op, "alter")) {
                rd_kafka_NewPartitions_t *np = rd_kafka_NewPartitions_new(
                    topic, (size_t)partitions, errstr, sizeof(errstr));
                if (!np)
                        usage(errstr);
                rd_kafka_CreatePartitions(rk, &np, 1, NULL, queue);
                rd_kafka_NewPartitions_destroy(np);
        } else {
                rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(topic);
                rd_kafka_DeleteTopics(rk, &dt, 1, NULL, queue);
                rd_kafka_DeleteTopic_destroy(dt);
        }

        ev = rd_kafka_queue_poll(queue, TIMEOUT_MS);
        if (!ev) {
                fprintf(stderr, "kafka-topics.sh stand-in: no answer in %dms\n",
                        TIMEOUT_MS);
                return 1;
        }
        if (rd_kafka_event_error(ev)) {
                fprintf(stderr, "kafka-topics.sh stand-in: %s: %s\n", op,
                        rd_kafka_event_error_string(ev));
                failed = 1;
        } else {
                if (!strcmp(op, "create"))
                        results = rd_kafka_CreateTopics_result_topics(
                            rd_kafka_event_CreateTopics_result(ev), &nresults);
                else if (!strcmp(op, "alter"))
                        results = rd_kafka_CreatePartitions_result_topics(
                            rd_kafka_event_CreatePartitions_result(ev),
                            &nresults);
                else
                        results = rd_kafka_DeleteTopics_result_topics(
                            rd_kafka_event_DeleteTopics_result(ev), &nresults);
                if (nresults != 1) {
                        fprintf(stderr,
                                "kafka-topics.sh stand-in: %zu results for "
                                "one topic\n",
                                nresults);
                        failed = 1;
                }
                for (i = 0; i < (int)nresults; i++) {
                        rd_kafka_resp_err_t err =
                            rd_kafka_topic_result_error(results[i]);
                        if (err) {
                                fprintf(stderr, "%s %s: %s\n", op,
                                        rd_kafka_topic_result_name(results[i]),
                                        rd_kafka_topic_result_error_string(
                                            results[i]));
                                failed = 1;
                        } else
                                printf("%s topic \"%s\": done\n", op,
                                       rd_kafka_topic_result_name(results[i]));
                }
        }
        rd_kafka_event_destroy(ev);
        rd_kafka_queue_destroy(queue);
        rd_kafka_destroy(rk);
        return failed;
}
