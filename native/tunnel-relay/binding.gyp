{
  "targets": [
    {
      "target_name": "tunnel_relay",
      "sources": ["tunnel_relay.c", "tls_legs.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Werror"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
