/*
 * The library's option defaults: callout_options_init(), from the option
 * table (src/common/option_table.c), which the CLI and calloutd's
 * configuration share.
 */
#include <string.h>

#include <callout/callout.h>

#include "option_table.h"

CALLOUT_API void callout_options_init(callout_options *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->struct_size = sizeof(*opts);
	co_opt_defaults(opts, false);
}
