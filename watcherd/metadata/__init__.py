"""What a photo says about itself: capture time, place, camera and description, read from the
bytes a worker already holds (EXIF, XMP, IPTC; an XMP sidecar wins) and placed offline (time
zone, country, region, nearest populated place). Plain values in and out: this package knows
nothing of Celery, click, config or the database."""
