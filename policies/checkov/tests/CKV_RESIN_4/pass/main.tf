resource "resin_package" "p" {
  image = "linuxkit/dhcpcd@sha256:abababababababababababababababababababababababababababababababab"
  net   = "host"
  annotations = {
    "resin-allow-host-namespaces" = "true"
  }
}
