/*
 * callout(1): verify e-mail addresses with SMTP callouts.
 *
 * main() only dispatches: `callout COMMAND [ARGS]`, where each command
 * parses its own options.  See cli.h for the other files.
 */
#include <signal.h>
#include <string.h>

#include "cli.h"

struct command {
	const char *name;
	const char *summary;
	int (*main)(int argc, char **argv);
	void (*help)(FILE *fp);
};

static const struct command commands[] = {
    {"check", "verify addresses", cli_check_main, cli_check_help},
    {"cache", "list, inspect and tidy the cache", cli_cache_main, cli_cache_help},
    {"doctor", "check our own side: port 25, PTR, HELO, blocklists", cli_doctor_main,
     cli_doctor_help},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void help(FILE *fp)
{
	fputs("Usage: " CLI_PROG " COMMAND [OPTIONS] [ARGS]\n"
	      "       " CLI_PROG " check [OPTIONS] ADDRESS...\n"
	      "       " CLI_PROG " cache list|get|delete|purge|stats [OPTIONS] [ARG]\n"
	      "       " CLI_PROG " doctor [OPTIONS] DOMAIN | --host HOST[:PORT]\n"
	      "\n"
	      "Ask the mail exchanger responsible for an address whether it would accept\n"
	      "mail for it (an SMTP callout), without sending a message.\n"
	      "\n"
	      "Commands:\n",
	      fp);
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(fp, "  %-16s %s\n", commands[i].name, commands[i].summary);
	fputs("  help [COMMAND]   show the help of a command\n"
	      "\n"
	      "Options:\n"
	      "  -h, --help     show this help and exit\n"
	      "      --version  show the version and exit\n"
	      "\n"
	      "Run '" CLI_PROG " COMMAND --help' for the options of a command.\n"
	      "Exit status: 0 all valid, 1 some invalid, 2 usage error, 3 otherwise.\n",
	      fp);
}

static int usage_error(const char *what, const char *arg)
{
	fprintf(stderr, CLI_PROG ": %s '", what);
	cli_fput_escaped(stderr, arg, strlen(arg), false);
	fputs("'\nTry '" CLI_PROG " --help' for more information.\n", stderr);
	return CLI_EXIT_USAGE;
}

static const struct command *find(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* Flush stdout at the end; a closed pipe is not worth a message. */
static int finish(int rc)
{
	if (fflush(stdout) != 0 && rc == CLI_EXIT_VALID)
		rc = CLI_EXIT_OTHER;
	return rc;
}

int main(int argc, char **argv)
{
	const struct command *cmd;
	struct sigaction sa;

	/* A reader that goes away must give EPIPE on write (checked after
	 * every result), not kill us; sockets need this too. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGPIPE, &sa, NULL) != 0) {
		perror(CLI_PROG ": sigaction");
		return CLI_EXIT_OTHER;
	}

	if (argc < 2) {
		help(stderr);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		help(stdout);
		return finish(CLI_EXIT_VALID);
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf(CLI_PROG " %s (libcallout %s)\n", CALLOUT_VERSION_STR, callout_version());
		return finish(CLI_EXIT_VALID);
	}
	if (strcmp(argv[1], "help") == 0) {
		if (argc < 3) {
			help(stdout);
			return finish(CLI_EXIT_VALID);
		}
		cmd = find(argv[2]);
		if (!cmd)
			return usage_error("unknown command", argv[2]);
		cmd->help(stdout);
		return finish(CLI_EXIT_VALID);
	}
	if (argv[1][0] == '-')
		return usage_error("unknown option", argv[1]);
	cmd = find(argv[1]);
	if (!cmd)
		return usage_error("unknown command", argv[1]);
	return finish(cmd->main(argc - 1, argv + 1));
}
