/*
 * eddy — CLI commands implemented outside src/cli/main.c.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Each command takes the arguments that follow its name on the command line
 * (`eddy kafka-dev --port 9092` passes {"--port", "9092"}) and returns the
 * process exit status, following main.c's conventions: 0 success, 1 failure,
 * 2 bad usage (one line on stderr pointing at --help).
 */
#ifndef EDDY_CLI_COMMANDS_H
#define EDDY_CLI_COMMANDS_H

/* `eddy kafka-dev`: the development Kafka broker (src/cli/kafka_dev.c). */
int eddy__cli_kafka_dev(int argc, char **argv);
/* Its --help text (also printed by `eddy help kafka-dev`). */
extern const char *const eddy__cli_kafka_dev_usage;

#endif /* EDDY_CLI_COMMANDS_H */
