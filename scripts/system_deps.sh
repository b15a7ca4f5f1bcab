#!/usr/bin/env bash
# Installs Debian's fluidsynth (renders the Bach chorales with a General MIDI soundfont) when apt is
# available and we may use it; otherwise prints a note: ditto2_nb then renders with its built-in
# synthesiser, and everything else works the same.
if python3 -c "import ctypes.util, sys; sys.exit(0 if ctypes.util.find_library('fluidsynth') else 1)"; then
    exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    echo "installing Debian's fluidsynth (for rendering MIDI) ..."
    if (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fluidsynth) >/dev/null 2>&1; then
        exit 0
    fi
fi
echo "note: libfluidsynth is not available; chorales will be rendered with the built-in synthesiser."
exit 0
