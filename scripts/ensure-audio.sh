#!/usr/bin/env bash
# The audio tests synthesise speech with espeak-ng and open a PortAudio microphone (against an
# ALSA file PCM); make sure espeak-ng and libportaudio2 exist.
set -euo pipefail
missing=()
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
ldconfig -p 2>/dev/null | grep -q libportaudio.so.2 || missing+=(libportaudio2)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} with apt-get"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  exit 0
fi
echo "error: the audio tests need ${missing[*]}." >&2
echo "       install them with: sudo apt-get install ${missing[*]}" >&2
exit 1
