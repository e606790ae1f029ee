# h16-src-a: public names renamed in dccd_core/sources/{binance,bybit,okx}
# apply (extended regexps, like src-b's script):
#   find tests bench -name "*.py" -exec sed -i -E -f RENAMES.sed {} +
# then sort the imports it touched: ruff check --fix --select I001 tests bench
# (names, and the one unpacking the Request dataclass changes; no assertion changes)
s/\bBinanceRestSource\b/BinanceRest/g
s/\bBybitRestSource\b/BybitRest/g
s/\bOkxRestSource\b/OkxRest/g
s/\bbuild_klines_request\b/build_candles_request/g
s/\bbuild_agg_trades_request\b/build_trades_request/g
s/\bbuild_depth_request\b/build_book_request/g
s/\bparse_agg_trades_page\b/parse_trades_page/g
s/\bparse_agg_trades\b/parse_trades/g
s/\bparse_klines\b/parse_candles/g
s/\bparse_depth\b/parse_book/g
s/\bparse_exchange_info\b/parse_symbols/g
# Request(path, params, weight) unpacks in three, not two (Bybit/OKX tests)
/^.{97,}$/s/^( *)path, params = build_candles_request\(/\1path, params, _ = build_candles_request(\n\1    /
s/\bpath, params = build_candles_request\(/path, params, _ = build_candles_request(/g
s/(build_trades_request\([^()]*\))\[1\]/\1.params/g
