/*
 * calloutd.conf, read: lines, section headers, keys to their setters, the
 * whole file and what depends on several keys (see config.c for the
 * rules our line reader adds to inih's).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "config_int.h"
#include "config_syntax.h"

/* ---- lines ------------------------------------------------------------ */

/* [proxy NAME]: a new pool. */
static bool open_proxy_section(struct pst *st, char *name)
{
	const char *why;
	cd_proxy *px;

	while (cfg_is_blank(*name))
		name++;
	if (!*name)
		return cfg_fail(st, "%s", "[proxy] needs a name: [proxy NAME]");
	if ((why = cfg_bad_proxy_name(name)))
		return cfg_fail(st, "[proxy %s]: %s", name, why);
	if (strcmp(name, "default") == 0 || strcmp(name, "direct") == 0)
		return cfg_fail(
		    st, "[proxy %s]: the name is taken (default: [engine] proxy; direct: none)",
		    name);
	if (cd_config_proxy(st->c, name))
		return cfg_fail(st, "[proxy %s]: section given twice", name);
	if (st->nproxies >= PROXIES_MAX)
		return cfg_fail(st, "too many [proxy] sections (at most %d)", PROXIES_MAX);
	if (!(px = calloc(1, sizeof(*px)))) {
		st->nomem = true;
		return cfg_fail(st, "%s", "out of memory");
	}
	strcpy(px->name, name); /* bad_proxy_name: at most 63 */
	px->http = true;
	*st->px_tail = px;
	st->px_tail = &px->next;
	st->nproxies++;
	st->px = px;
	st->dom = NULL;
	st->sect = S_PROXY;
	snprintf(st->sect_label, sizeof(st->sect_label), "proxy %s", name);
	return true;
}

static bool open_section(struct pst *st, const char *s, size_t len)
{
	const char *close = memchr(s, ']', len), *end = s + len;
	char inner[300];
	size_t n;

	if (!close)
		return cfg_fail(st, "%s", "section header without ']'");
	for (const char *p = close + 1; p < end && *p != ';' && *p != '#'; p++)
		if (!cfg_is_blank(*p))
			return cfg_fail(st, "%s", "text after the section header");
	s++;
	while (s < close && cfg_is_blank(*s))
		s++;
	n = (size_t)(close - s);
	while (n > 0 && cfg_is_blank(s[n - 1]))
		n--;
	if (n >= sizeof(inner))
		return cfg_fail(st, "%s", "section name too long");
	memcpy(inner, s, n);
	inner[n] = '\0';

	memset(st->key_line, 0, sizeof(unsigned) * cfg_nkeys);
	memset(st->opt_line, 0, sizeof(st->opt_line));
	st->cur_key = NULL;
	st->cur_opt = NULL;
	st->px = NULL;
	if (strncmp(inner, "proxy", 5) == 0 && (inner[5] == '\0' || cfg_is_blank(inner[5])))
		return open_proxy_section(st, inner + 5);
	if (strncmp(inner, "domain", 6) == 0 && (inner[6] == '\0' || cfg_is_blank(inner[6]))) {
		char *name = inner + 6;
		const char *why;
		cd_domain *d;

		while (cfg_is_blank(*name))
			name++;
		if (!*name)
			return cfg_fail(st, "%s",
			                "[domain] needs a domain name: [domain example.org]");
		if ((why = cfg_normalise_domain(name)))
			return cfg_fail(st, "[domain %s]: %s", name, why);
		for (d = st->c->domains; d; d = d->next)
			if (strcmp(d->name, name) == 0)
				return cfg_fail(st, "[domain %s]: section given twice", name);
		if (st->ndomains >= DOMAINS_MAX)
			return cfg_fail(st, "too many [domain] sections (at most %d)", DOMAINS_MAX);
		if (!(d = calloc(1, sizeof(*d)))) {
			st->nomem = true;
			return cfg_fail(st, "%s", "out of memory");
		}
		strcpy(d->name, name); /* valid_hostname: at most 253 */
		*st->dom_tail = d;
		st->dom_tail = &d->next;
		st->ndomains++;
		st->dom = d;
		st->sect = S_DOMAIN;
		snprintf(st->sect_label, sizeof(st->sect_label), "domain %s", name);
		return true;
	}
	for (size_t i = 1; i < CFG_NSECTS; i++) {
		if (i == S_DOMAIN || i == S_PROXY || strcmp(inner, cfg_sect_names[i]) != 0)
			continue;
		if (st->sect_line[i])
			return cfg_fail(st, "[%s]: section given twice (first on line %u)", inner,
			                st->sect_line[i]);
		st->sect_line[i] = st->line;
		st->sect = (enum sect)i;
		st->dom = NULL;
		snprintf(st->sect_label, sizeof(st->sect_label), "%s", inner);
		return true;
	}
	return cfg_fail(st,
	                "[%s]: unknown section (daemon, engine, cache, verify, policy, milter, "
	                "http, doctor, domain NAME or proxy NAME)",
	                inner);
}

/*
 * inih's line reader: one physical line per call, checked and classified
 * (see the top of the file).  Comments and blank lines reach inih as empty
 * lines and section headers as "[s]": only key and continuation lines are
 * inih's to split.  NULL at the end or after the first error.
 */
static char *read_line(char *buf, int num, void *arg)
{
	struct pst *st = arg;
	const char *s, *e, *nl;
	size_t len, i;

	if (st->failed || st->p >= st->end)
		return NULL;
	s = st->p;
	nl = memchr(s, '\n', (size_t)(st->end - s));
	e = nl ? nl : st->end;
	st->p = nl ? nl + 1 : st->end;
	st->line++;
	st->cont = false;
	if (e > s && e[-1] == '\r')
		e--;
	if (st->line == 1 && e - s >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
		s += 3; /* a UTF-8 byte order mark */
	len = (size_t)(e - s);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			cfg_fail(st, "control character 0x%02x in the line", c);
			return NULL;
		}
	}
	for (i = 0; i < len && cfg_is_blank(s[i]); i++)
		;
	if (i == len || s[i] == ';' || s[i] == '#') {
		/* blank line or comment: a blank line ends a continuation */
		if (i == len)
			st->can_continue = false;
		buf[0] = '\0';
		return buf;
	}
	if (i == 0 && s[0] == '[') {
		st->can_continue = false;
		if (!open_section(st, s, len))
			return NULL;
		strcpy(buf, "[s]");
		return buf;
	}
	if (num < 2 || len > (size_t)num - 1) {
		cfg_fail(st, "line too long (at most %d characters)", num - 1);
		return NULL;
	}
	if (i > 0) {
		if (!st->can_continue) {
			cfg_fail(st, "%s",
			         "indented line: keys and sections start in the first column; "
			         "only a list continues on indented lines, right below its "
			         "key line");
			return NULL;
		}
		st->cont = true;
	} else {
		/* what inih will take for the separator: '=' or ':' before any
		 * " ;" comment */
		bool sep = false;
		for (i = 0; i < len && !sep; i++) {
			if (s[i] == ';' && i > 0 && cfg_is_blank(s[i - 1]))
				break;
			sep = s[i] == '=' || s[i] == ':';
		}
		if (!sep) {
			cfg_fail(st, "%s", "expected key = value");
			return NULL;
		}
		st->can_continue = true;
	}
	memcpy(buf, s, len);
	buf[len] = '\0';
	return buf;
}

/* A key of the option table: [engine] and [cache] numbers and booleans. */
static int set_option(struct pst *st, const co_optdef *opt, const char *value)
{
	size_t n, i = (size_t)(opt - co_opt_table(&n));
	char why[160];
	const char *bad;

	if (st->opt_line[i])
		return cfg_fail(st, "[%s] %s: given twice (first on line %u)", st->sect_label,
		                opt->name, st->opt_line[i]);
	st->opt_line[i] = st->line;
	st->cur_key = NULL;
	st->cur_opt = opt;
	if ((bad = co_opt_parse(opt, value, &st->c->opts, why, sizeof(why))))
		return cfg_fail(st, "[%s] %s: %s, got '%s'", st->sect_label, opt->name, bad, value);
	return 1;
}

static int on_value(void *arg, const char *section, const char *name, const char *value)
{
	struct pst *st = arg;
	const struct keydef *k = NULL;
	const co_optdef *opt;
	char v[512];
	size_t n = strlen(value);

	(void)section; /* ours is in st */
	if (st->failed)
		return 0;
	if (st->cont && st->cur_opt)
		return cfg_fail(st,
		                "[%s] %s: only a list continues on an indented line (keys start in "
		                "the first column)",
		                st->sect_label, st->cur_opt->name);
	if (!st->cont && (st->sect == S_ENGINE || st->sect == S_CACHE))
		if ((opt = co_opt_find(cfg_sect_names[st->sect], name)) && opt->type != CO_OPT_TEXT)
			return set_option(st, opt, value);
	st->cur_opt = NULL;
	if (st->cont) {
		k = st->cur_key;
		if (!k)
			return cfg_fail(st, "%s", "continuation of nothing");
		if (!k->list)
			return KFAIL(st, k, "%s",
			             "only a list continues on an indented line (keys "
			             "start in the first column)");
	} else {
		if (st->sect == S_NONE)
			return cfg_fail(st, "%s: key outside any section", name);
		if (!*name)
			return cfg_fail(st, "[%s]: a key name is missing before '='",
			                st->sect_label);
		for (size_t i = 0; i < cfg_nkeys && !k; i++)
			if (cfg_keys[i].sect == st->sect && strcmp(cfg_keys[i].name, name) == 0)
				k = &cfg_keys[i];
		if (!k)
			return cfg_fail(st, "[%s] %s: unknown key", st->sect_label, name);
		unsigned *seen = &st->key_line[k - cfg_keys];
		if (*seen)
			return KFAIL(st, k, "given twice (first on line %u)", *seen);
		*seen = st->line;
		st->cur_key = k;
	}
	if (n >= sizeof(v)) /* cannot happen with inih's line buffer */
		return KFAIL(st, k, "%s", "value too long");
	memcpy(v, value, n + 1);
	if (st->cont) {
		/* inih strips " ;comment" from key lines, not from continuations */
		for (size_t i = 1; i < n; i++) {
			if (v[i] == ';' && cfg_is_blank(v[i - 1])) {
				while (i > 0 && cfg_is_blank(v[i - 1]))
					i--;
				v[i] = '\0';
				break;
			}
		}
	}
	return k->set(st, k, v, st->cont);
}

/* ---- the whole file ------------------------------------------------- */

/* What depends on several keys, once the whole file is read. */
static bool finish(struct pst *st)
{
	cd_config *c = st->c;

	for (const cd_proxy *px = c->proxies; px; px = px->next)
		if (!px->url[0])
			return cfg_fail(
			    st, "[proxy %s]: url is missing (socks5://HOST:PORT[, ...])", px->name);
	for (const cd_domain *d = c->domains; d; d = d->next) {
		if (!d->proxy[0] || strcmp(d->proxy, "direct") == 0 || cd_config_proxy(c, d->proxy))
			continue;
		if (strcmp(d->proxy, "default") != 0)
			return cfg_fail(st, "[domain %s] proxy: no [proxy %s] section", d->name,
			                d->proxy);
		if (!c->proxy[0])
			return cfg_fail(st,
			                "[domain %s] proxy: default, but [engine] proxy is not set",
			                d->name);
	}

	for (size_t i = 0; i < c->npolicy_listen; i++)
		if (c->policy_listen[i].is_unix)
			c->policy_listen[i].mode = st->socket_mode;
	if (!st->cache_set) {
		const char *sep = strcmp(c->state_dir, "/") == 0 ? "" : "/";
		size_t need =
		    strlen("lmdb:") + strlen(c->state_dir) + strlen(sep) + strlen("cache.lmdb");
		if (need >= sizeof(c->cache)) {
			st->line = st->state_dir_line;
			return cfg_fail(st, "%s",
			                "[daemon] state_dir: too long for the default cache "
			                "lmdb:STATE_DIR/cache.lmdb");
		}
		strcpy(c->cache, "lmdb:");
		strcat(c->cache, c->state_dir);
		strcat(c->cache, sep);
		strcat(c->cache, "cache.lmdb");
	}
	return true;
}

static cd_config *parse_buffer(const char *text, size_t len, const char *name, char *err,
                               size_t errlen)
{
	unsigned key_line[CFG_KEYS_MAX];
	struct pst st;
	cd_config *c;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	memset(&st, 0, sizeof(st));
	st.name = name ? name : "(config)";
	st.err = err;
	st.errlen = errlen;
	st.key_line = key_line;
	memset(key_line, 0, sizeof(key_line));
	if (!(c = calloc(1, sizeof(*c)))) {
		cfg_fail(&st, "%s", "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	st.c = c;
	st.p = text;
	st.end = text + len;
	st.dom_tail = &c->domains;
	st.px_tail = &c->proxies;
	st.socket_mode = 0660;
	cfg_set_defaults(c);
	if (strlen(st.name) >= sizeof(c->path)) {
		cfg_fail(&st, "%s", "file name too long");
		goto fail;
	}
	strcpy(c->path, st.name);

	rc = ini_parse_stream(read_line, &st, on_value, &st);
	if (st.failed)
		goto fail;
	if (rc != 0) { /* inih found something our reader let through */
		st.line = rc > 0 ? (unsigned)rc : st.line;
		st.nomem = rc == -2; /* inih's own line buffer */
		cfg_fail(&st, "%s",
		         rc > 0     ? "syntax error"
		         : rc == -2 ? "out of memory"
		                    : "cannot parse");
		goto fail;
	}
	if (!finish(&st))
		goto fail;
	return c;
fail:
	cd_config_free(c);
	errno = st.nomem ? ENOMEM : EINVAL;
	return NULL;
}

cd_config *cd_config_parse(const char *text, const char *name, char *err, size_t errlen)
{
	return parse_buffer(text ? text : "", text ? strlen(text) : 0, name, err, errlen);
}

cd_config *cd_config_load(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		int saved = errno;
		cfg_errorf(err, errlen, "%s: %s", path, strerror(errno));
		errno = saved;
		return NULL;
	}
	cd_config *c = cd_config_load_fd(fd, path, err, errlen);
	int saved = errno;
	close(fd);
	errno = saved;
	return c;
}

cd_config *cd_config_load_fd(int fd, const char *path, char *err, size_t errlen)
{
	struct stat sb;
	char *buf = NULL;
	size_t len = 0;
	cd_config *c = NULL;
	int saved;

	if (!err)
		errlen = 0; /* snprintf(NULL, 0, ...) is fine */
	if (errlen)
		err[0] = '\0';
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		cfg_errorf(err, errlen, "%s: %s", path,
		           S_ISDIR(sb.st_mode) ? "is a directory" : "not a regular file");
		errno = EINVAL;
		goto done;
	}
	if (!(buf = malloc(CONFIG_FILE_MAX + 1))) {
		cfg_errorf(err, errlen, "%s: out of memory", path);
		errno = ENOMEM;
		goto done;
	}
	for (;;) {
		/* pread from 0: the same descriptor is read again on reload */
		ssize_t n = pread(fd, buf + len, CONFIG_FILE_MAX + 1 - len, (off_t)len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			cfg_errorf(err, errlen, "%s: %s", path, strerror(errno));
			goto done;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > CONFIG_FILE_MAX) {
			cfg_errorf(err, errlen, "%s: larger than %d bytes", path, CONFIG_FILE_MAX);
			errno = EINVAL;
			goto done;
		}
	}
	c = parse_buffer(buf, len, path, err, errlen);
done:
	saved = errno; /* why c is NULL */
	free(buf);
	errno = saved;
	return c;
}

void cd_config_free(cd_config *c)
{
	if (!c)
		return;
	for (cd_domain *d = c->domains, *next; d; d = next) {
		next = d->next;
		free(d);
	}
	for (cd_proxy *px = c->proxies, *next; px; px = next) {
		next = px->next;
		free(px);
	}
	free(c);
}
