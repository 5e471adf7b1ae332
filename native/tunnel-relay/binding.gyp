{
  "targets": [
    {
      "target_name": "tunnel_relay",
      "sources": ["tunnel_relay.c", "relay_pump.c", "tls_legs.c", "tls_leg_engine.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Werror"],
      # Never unloaded: the relay and TLS threads are detached and outlive any one environment
      # (Node dlcloses an addon when the last worker thread that loaded it ends; the threads
      # then ran in unmapped code). test/egress/native-addon-unload.test.ts
      "ldflags": ["-Wl,-z,nodelete"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
