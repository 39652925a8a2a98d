resource "resin_kernel" "lts" {
  image   = "linuxkit/kernel:6.6.13"
  cmdline = "console=tty0 console=ttyS0"

  # LinuxKit's layout, spelled out (these are the defaults).
  binary      = "kernel"
  modules_tar = "kernel.tar"
}
