/* Helpers shared by the addon's relays (tunnels and TLS legs). */
#ifndef BERTH_NATIVE_COMMON_H
#define BERTH_NATIVE_COMMON_H

#include <errno.h>
#include <node_api.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* Throws a JavaScript Error with the message (and strerror of error_number when not 0). */
static inline napi_value throw_error(napi_env env, const char *message, int error_number) {
  char text[512];
  if (error_number != 0)
    snprintf(text, sizeof(text), "%s: %s", message, strerror(error_number));
  else
    snprintf(text, sizeof(text), "%s", message);
  napi_throw_error(env, NULL, text);
  return NULL;
}

/* Starts a detached thread with a small stack; 0 or an errno. */
static inline int start_detached_thread(void *(*run)(void *)) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  pthread_t thread;
  int error_number = pthread_create(&thread, &attr, run, NULL);
  pthread_attr_destroy(&attr);
  return error_number;
}

#endif
