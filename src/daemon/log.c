/* Logging: syslog (the default) or standard error, one line a message. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "daemon.h"

static bool to_stderr = true;
static bool debug;
static bool syslog_open;

static const struct {
	const char *name;
	int facility;
} facilities[] = {
    {"mail", LOG_MAIL},     {"daemon", LOG_DAEMON}, {"local0", LOG_LOCAL0}, {"local1", LOG_LOCAL1},
    {"local2", LOG_LOCAL2}, {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4}, {"local5", LOG_LOCAL5},
    {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7}, {"user", LOG_USER},
};

void cd_log_open(const cd_config *cfg)
{
	int facility = LOG_MAIL;

	to_stderr = !cfg || cfg->log_stderr;
	debug = cfg && cfg->debug;
	if (to_stderr)
		return;
	for (size_t i = 0; i < sizeof(facilities) / sizeof(facilities[0]); i++)
		if (strcmp(cfg->syslog_facility, facilities[i].name) == 0)
			facility = facilities[i].facility;
	if (syslog_open)
		closelog();
	openlog("calloutd", LOG_PID | LOG_NDELAY, facility);
	syslog_open = true;
}

void cd_log(cd_log_level level, const char *fmt, ...)
{
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	static const char *const names[] = {"error", "warning", "info", "debug"};
	va_list ap;

	if (level == CD_LOG_DEBUG && !debug)
		return;
	va_start(ap, fmt);
	if (to_stderr) {
		char msg[2048];
		vsnprintf(msg, sizeof(msg), fmt, ap);
		fprintf(stderr, "calloutd: %s: %s\n", names[level], msg);
	} else {
		vsyslog(prio[level], fmt, ap);
	}
	va_end(ap);
}

void cd_log_engine(void *arg, const char *msg)
{
	(void)arg;
	cd_log(CD_LOG_WARNING, "%s", msg);
}

void cd_log_trace(void *arg, const char *line)
{
	(void)arg;
	cd_log(CD_LOG_DEBUG, "trace: %s", line);
}
