#!/usr/bin/env bash
# Installs the Debian packages ditto2_nb can use, when apt is available and we may use it (root);
# otherwise prints a note. Never fails the build.
#   fluidsynth: renders the Bach chorales with a General MIDI soundfont (without it, ditto2_nb renders
#     with its built-in synthesiser, and everything else works the same);
#   chromium, chromium-driver: the panels' real-browser test, tests/test_browser.py (without them it
#     skips, and under CI it fails).
can_apt() { command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; }
updated=""
apt_install() {  # quiet; succeeds only if every package got installed
    can_apt || return 1
    if [ -z "$updated" ]; then
        apt-get update -qq >/dev/null 2>&1 || return 1
        updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1
}

if ! python3 -c "import ctypes.util, sys; sys.exit(0 if ctypes.util.find_library('fluidsynth') else 1)"; then
    can_apt && echo "installing Debian's fluidsynth (for rendering MIDI) ..."
    apt_install fluidsynth ||
        echo "note: libfluidsynth is not available; chorales will be rendered with the built-in synthesiser."
fi

if ! { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }; then
    can_apt && echo "installing Debian's chromium and chromium-driver (for the real-browser test) ..."
    apt_install chromium chromium-driver ||
        echo "note: chromium and chromium-driver are not available; tests/test_browser.py will skip (and fail under CI)."
fi
exit 0
