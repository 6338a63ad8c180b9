"""Server-rendered pages for members. Each view parses input, calls one service or selector,
and renders; the actions on the pages are small JS modules calling the API (api/static/zspb).
"""
