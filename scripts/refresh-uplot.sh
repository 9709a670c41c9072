#!/bin/sh
# Refreshes the dashboard's vendored uPlot (http/dashboard/vendor/uplot)
# from its npm package: the minified browser build, its stylesheet and its
# licence. The dashboard loads it from this server only (no CDN), so it
# works offline. Usage: scripts/refresh-uplot.sh [VERSION] (default: the
# pinned one below). Check the sum it prints into the README.
set -eu
version=${1:-1.6.32}
dest=$(cd "$(dirname "$0")/.." && pwd)/http/dashboard/vendor/uplot
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
npm pack "uplot@$version" >/dev/null
sha256sum "uplot-$version.tgz"
tar xzf "uplot-$version.tgz"
cp package/dist/uPlot.iife.min.js package/dist/uPlot.min.css package/LICENSE "$dest/"
echo "uPlot $version" > "$dest/VERSION"
echo "vendored uPlot $version into $dest"
