/* What every libFuzzer target shares: its entry point and CHECK, which
 * stops the run (a crash libFuzzer saves) when an invariant breaks. */
#ifndef CO_FUZZ_H
#define CO_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x))                                                                          \
			__builtin_trap();                                                          \
	} while (0)

#endif
