#!/bin/bash
# Builds the lab's initramfs: a static busybox plus the few modules needed to mount the host's root
# over virtio-9p. Its /init mounts that root read-only with a tmpfs overlay on top, mounts the run's
# shared folder (9p tag "lab") at /lab, binds the lab kernel's modules at /lib/modules, and switches
# root to the overlay to run /lab/init2.sh (tests/lab/guest-init.sh, copied there by vmrun.sh) as PID 1.
#
# Usage: mkinitrd.sh KERNEL_ROOT KERNEL_VERSION BUSYBOX OUTPUT.cpio.gz
set -euo pipefail
KROOT=$1 KV=$2 BUSYBOX=$3 OUT=$4
export PATH=$PATH:/usr/sbin:/sbin

W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W"/{bin,dev,proc,sys,host,upper,newroot,mods}
cp "$BUSYBOX" "$W/bin/busybox"

# Load order (dependencies first) straight from the kernel's own modules.dep; built-ins are skipped.
: > "$W/mods/order"
for m in virtio_pci 9pnet_virtio 9p overlay; do modprobe -d "$KROOT" -S "$KV" --show-depends "$m"; done |
while read -r kind path _; do
	[ "$kind" = insmod ] || continue
	name=$(basename "$path"); name=${name%%.ko*}
	grep -qx "$name" "$W/mods/order" && continue
	case $path in
	*.ko.xz) xz -dc "$path" > "$W/mods/$name.ko" ;;
	*.ko.zst) zstd -qdc "$path" > "$W/mods/$name.ko" ;;
	*.ko.gz) gzip -dc "$path" > "$W/mods/$name.ko" ;;
	*) cp "$path" "$W/mods/$name.ko" ;;
	esac
	echo "$name" >> "$W/mods/order"
done
[ -s "$W/mods/order" ] || grep -q 9pnet_virtio "$KROOT/lib/modules/$KV/modules.builtin" \
	|| { echo "mkinitrd: found no modules for 9p in $KROOT" >&2; exit 1; }

cat > "$W/init" <<'EOI'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
say() { echo "lab-init: $*" > /dev/console; }
halt_now() { sync; echo o > /proc/sysrq-trigger; poweroff -f; }
for m in $(cat /mods/order); do insmod /mods/$m.ko || say "insmod $m failed"; done
mods=
for a in $(cat /proc/cmdline); do case $a in lab.mods=*) mods=${a#lab.mods=} ;; esac; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 hostroot /host \
	|| { say "cannot mount the host root (9p)"; halt_now; }
mount -t tmpfs -o mode=755 tmpfs /upper
mkdir -p /upper/u /upper/w
mount -t overlay overlay -o lowerdir=/host,upperdir=/upper/u,workdir=/upper/w /newroot \
	|| { say "cannot mount the overlay"; halt_now; }
mkdir -p /newroot/lab
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 lab /newroot/lab \
	|| { say "cannot mount the lab share"; halt_now; }
if [ -n "$mods" ]; then
	mkdir -p /newroot/lib/modules
	mount -o bind /newroot$mods /newroot/lib/modules || say "cannot bind $mods"
fi
# switch_root, not chroot: the kernel's own helpers (request_module -> /sbin/modprobe) must see the
# host's tools and the lab kernel's modules too, so the overlay becomes the real root.
umount /proc /sys /dev 2>/dev/null
exec switch_root /newroot /bin/sh /lab/init2.sh
say "switch_root failed"
halt_now
EOI
chmod 755 "$W/init"
(cd "$W" && find . -print | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -9) > "$OUT"
