{
  "targets": [
    {
      "target_name": "splice_relay",
      "sources": ["splice_relay.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Werror"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
