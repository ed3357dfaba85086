#!/bin/sh
# Turn a Debian image into the macOS-like profile (run once, as root, at image build time).
set -eu
TMPDIR_MAC=/var/folders/zz/zyxvpxvq6csfxvn_n0000000000000/T
mkdir -p /opt/dk/gnu
for tool in stat date sed mktemp; do
    # keep GNU originals out of PATH (the sed wrapper delegates editing to GNU sed)
    mv "/usr/bin/$tool" "/opt/dk/gnu/$tool"
    install -m 0755 "/opt/dk/macos/bin/$tool" "/usr/bin/$tool"
done
# GNU-only tools macOS does not have
for tool in timeout setsid flock stdbuf; do
    rm -f "/usr/bin/$tool" "/bin/$tool" "/usr/sbin/$tool"
done
# macOS-like user: uid 501, primary group staff (gid 20 on macOS; Debian's gid 20 is dialout)
groupadd -f staff
useradd -m -u 501 -g staff -s /bin/zsh -d /Users/dev dev
usermod -s /bin/zsh root
# macOS's zsh shows no new-user menu; Debian's runs zsh-newuser-install in any HOME without zsh startup
# files (the kit's private test HOME): its menu swallowed keys typed into the shell (shell_pid, seed_polling)
echo 'zsh-newuser-install() { :; }' >>/etc/zsh/zshenv
mkdir -p "$TMPDIR_MAC"
chown dev:staff "$TMPDIR_MAC"
chmod 0700 "$TMPDIR_MAC"
# /tmp is a symlink into /private on macOS
mkdir -p /private
cp -a /tmp /private/tmp
rm -rf /tmp
ln -s private/tmp /tmp
chmod 1777 /private/tmp
