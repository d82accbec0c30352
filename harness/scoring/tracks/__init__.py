"""The scoring side of each track (named by :class:`harness.tracks.Track` ``scorer``): what goes into the
ingestion process, and how what comes back is scored. None of it imports student code."""
