#!/usr/bin/env bash
# Boots the demo image under QEMU (x86_64, TCG) when QEMU is installed and shows the
# markers its init and containers print.
#   boot-demo.sh OUTPUT_DIR
set -uo pipefail
out="$1"
if ! command -v qemu-system-x86_64 >/dev/null; then
  echo "QEMU is not installed (apt-get install qemu-system-x86): skipping the boot."
  exit 0
fi
console="$out/demo-console.log"
echo "Booting $out/demo-kernel + demo-initrd.img under QEMU (about 15 s)..."
timeout 240 qemu-system-x86_64 -m 512 -nographic -no-reboot \
  -kernel "$out/demo-kernel" -initrd "$out/demo-initrd.img" -append "$(cat "$out/demo-cmdline")" \
  </dev/null >"$console" 2>&1
grep -a 'RESIN-' "$console" | sed 's/^/  /'
if grep -aq 'Kernel panic' "$console" || ! grep -aq 'RESIN-BOOT-DONE' "$console"; then
  echo "The boot did not complete; console log: $console" >&2
  exit 1
fi
echo "Booted: init, two onboot containers and a service ran under runc. Console log: $console"
