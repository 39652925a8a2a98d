terraform import resin_kernel.lts linuxkit/kernel:6.6.13
