// The calling thread's last error, in C thread-local storage: an exported
// Go function runs on the C thread that called it, and so do the C calls it
// makes, so mmpi_set_error stores the error of exactly the thread that
// called into libmmp.

#include <stdlib.h>
#include <string.h>

#include "_cgo_export.h"

static __thread char *last_error;
static __thread int last_code;

// mmpi_set_error takes ownership of msg (malloc'ed, may be NULL to clear).
__attribute__((visibility("hidden"))) void mmpi_set_error(char *msg, int code) {
	free(last_error);
	last_error = msg;
	last_code = msg ? code : 0;
}

char *mmp_last_error(void) {
	return last_error ? strdup(last_error) : NULL;
}

int mmp_last_error_code(void) {
	return last_code;
}

void mmp_free(void *p) {
	free(p);
}

// An address for empty arrays (any non-NULL address will do).
__attribute__((visibility("hidden"))) _Alignas(64) char mmpi_empty[64];
