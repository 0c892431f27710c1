// The calling thread's last error, in C thread-local storage: an exported
// Go function runs on the C thread that called it, and so do the C calls it
// makes, so mmpi_set_error stores the error of exactly the thread that
// called into libmmp.

#include <stdint.h>
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

// The calling thread's call token (cgo/api_call.go): set by the caller
// with mmp_use_token for its next call, which takes it (mmpi_take_token)
// and keeps it as the thread's while it runs, for its work to find.
static __thread int64_t call_token;

void mmp_use_token(int64_t token) {
	call_token = token;
}

__attribute__((visibility("hidden"))) int64_t mmpi_take_token(void) {
	int64_t t = call_token;
	call_token = 0;
	return t;
}

__attribute__((visibility("hidden"))) int64_t mmpi_token(void) {
	return call_token;
}

__attribute__((visibility("hidden"))) void mmpi_set_token(int64_t token) {
	call_token = token;
}

// An address for empty arrays (any non-NULL address will do).
__attribute__((visibility("hidden"))) _Alignas(64) char mmpi_empty[64];
