"""What Plex and players see: HDHomeRun emulation, discovery, M3U and XMLTV."""
