{
  "targets": [
    {
      "target_name": "stasis",
      "sources": ["src/native/stasis.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
