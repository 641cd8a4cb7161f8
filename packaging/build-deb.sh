#!/usr/bin/env bash
# Build dist/mailbox-appliance_VERSION_all.deb with debhelper and dh-python (pybuild).
#
#   packaging/build-deb.sh
#   MAILBOX_APPLIANCE_DEB_VERSION=0.1.0+1 packaging/build-deb.sh    # another Debian version
#
# The version is setup.cfg's unless MAILBOX_APPLIANCE_DEB_VERSION overrides it (the override
# changes the package's version only, not the Python distribution's).  The source tree is copied
# to a temporary directory (the files git tracks, and new files it does not ignore; the whole
# tree, less build products, outside a git checkout), with packaging/debian/ as debian/, and
# built there: nothing but dist/ is written in the source tree.  Missing build dependencies are
# installed with apt-get (as root).  Prints the path of the .deb on its last line.
# MAILBOX_APPLIANCE_DEB_KEEP=1 keeps the temporary build directory for inspection.
set -euo pipefail

# Debian's own tools and python3, whatever the caller's PATH (pyenv shims, a venv) says.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV
export LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive

SOURCE=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DEPENDS=(debhelper dh-python pybuild-plugin-pyproject python3-all python3-setuptools python3-wheel dpkg-dev)

VERSION=${MAILBOX_APPLIANCE_DEB_VERSION:-$(sed -n 's/^version[[:space:]]*=[[:space:]]*//p' "$SOURCE/setup.cfg" | head -n1)}
if ! [[ $VERSION =~ ^[0-9][A-Za-z0-9.+~-]*$ ]]; then
    echo "build-deb.sh: '$VERSION' is not a Debian version (from setup.cfg or MAILBOX_APPLIANCE_DEB_VERSION)" >&2
    exit 1
fi

missing=()
for package in "${BUILD_DEPENDS[@]}"; do
    dpkg-query -W -f='${Status}\n' "$package" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$package")
done
if ((${#missing[@]})); then
    echo "build-deb.sh: installing the build dependencies ${missing[*]}"
    if [[ $(id -u) != 0 ]]; then
        echo "build-deb.sh: run as root, or install them first: apt-get install ${missing[*]}" >&2
        exit 1
    fi
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mailbox-appliance-deb.XXXXXX")
[[ -n ${MAILBOX_APPLIANCE_DEB_KEEP:-} ]] || trap 'rm -rf "$WORK"' EXIT
TREE="$WORK/mailbox-appliance-$VERSION"
mkdir "$TREE"

if git -C "$SOURCE" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # Tracked files as they are in the work tree, plus untracked ones .gitignore does not name.
    (cd "$SOURCE" && git ls-files -z --cached --others --exclude-standard \
        | xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh \
        | tar --null --files-from=- -cf -) | tar -xf - -C "$TREE"
else
    tar -C "$SOURCE" --exclude=.git --exclude=.venv --exclude=dist --exclude=build \
        --exclude='*.egg-info' --exclude=__pycache__ --exclude=dropin.cache \
        --exclude=mailbox-data --exclude=.pytest_cache -cf - . | tar -xf - -C "$TREE"
fi
find "$TREE" \( -name dropin.cache -o -name __pycache__ -o -name '*.egg-info' \) -prune -exec rm -rf {} +

rm -rf "$TREE/debian"
cp -a "$SOURCE/packaging/debian" "$TREE/debian"
sed -e "s/@VERSION@/$VERSION/" -e "s/@DATE@/$(date -R)/" "$TREE/debian/changelog.in" >"$TREE/debian/changelog"
rm "$TREE/debian/changelog.in"

echo "build-deb.sh: building mailbox-appliance $VERSION in $TREE"
(cd "$TREE" && dpkg-buildpackage -b -us -uc)

DEB="mailbox-appliance_${VERSION}_all.deb"
mkdir -p "$SOURCE/dist"
cp "$WORK/$DEB" "$SOURCE/dist/$DEB"
echo "build-deb.sh: built $SOURCE/dist/$DEB"
echo "$SOURCE/dist/$DEB"
