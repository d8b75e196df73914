"""The model centre's defaults that several layers need, defined once here (a leaf module: no imports)."""

# The centre's local time when no site file names one: Manado, WITA (UTC+8). A site's ``[centre] timezone``
# replaces it everywhere: the engine's day boundaries, the reports, and the times the console pages show.
CENTRE_TIMEZONE = "Asia/Makassar"
