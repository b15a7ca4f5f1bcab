#!/usr/bin/env bash
# Installs the Debian packages ditto2_nb can use, when apt is available and we may use it (root);
# otherwise prints a note. Never fails the build.
#   fluidsynth: renders the Bach chorales with a General MIDI soundfont (without it, ditto2_nb renders
#     with its built-in synthesiser, and everything else works the same);
#   fluid-soundfont-gm: FluidR3_GM.sf2 (MIT), the General MIDI soundfont the rendered repertoire
#     (ditto2_nb.data.repertoire, `python -m ditto2_nb.cli render`) plays its instruments with
#     (without it: pretty_midi's small TimGM6mb, then the built-in synthesiser, each announced);
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

if ! { [ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || [ -f /usr/share/soundfonts/FluidR3_GM.sf2 ]; }; then
    can_apt && echo "installing Debian's fluid-soundfont-gm (FluidR3_GM.sf2, for the rendered repertoire) ..."
    apt_install fluid-soundfont-gm ||
        echo "note: FluidR3_GM.sf2 is not available; the repertoire will be rendered with pretty_midi's TimGM6mb (or the built-in synthesiser)."
fi

if ! { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }; then
    can_apt && echo "installing Debian's chromium and chromium-driver (for the real-browser test) ..."
    apt_install chromium chromium-driver ||
        echo "note: chromium and chromium-driver are not available; tests/test_browser.py will skip (and fail under CI)."
fi
exit 0
