resource "resin_package" "p" {
  image = "linuxkit/sshd@sha256:abababababababababababababababababababababababababababababababab"
  net   = "new"
  pid   = "host"
}
# No net: LinuxKit's default, the host's network namespace.
resource "resin_package" "default_net" {
  image = "linuxkit/rngd@sha256:abababababababababababababababababababababababababababababababab"
}
