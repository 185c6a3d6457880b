# pip install -U "fuxictr>={min_text}" torch "polars<2"   (tested with {tested})
import fuxictr

_found = tuple(int(part) for part in fuxictr.__version__.split(".")[:3] if part.isdigit())
assert _found >= {min_version}, f"fuxictr>={min_text} is required, found {fuxictr.__version__}"
