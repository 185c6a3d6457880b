# pip install -U "fuxictr>=2.3.0" torch "polars<2"   (tested with fuxictr 2.3.10, torch 2.13.0, polars 1.x)
import fuxictr

_found = tuple(int(part) for part in fuxictr.__version__.split(".")[:3] if part.isdigit())
assert _found >= (2, 3, 0), f"fuxictr>=2.3.0 is required, found {fuxictr.__version__}"
