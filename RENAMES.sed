# h16-src-b: renamed public names in dccd_core/sources/{kraken,coinbase,bitfinex,bitmex}
# apply: find tests bench -name "*.py" -exec sed -i -E -f RENAMES.sed {} +
# then sort the imports it touched: ruff check --fix --select I001 tests bench
s/\bbitmex\.source\b/bitmex.rest/g
s/\bparse_asset_pairs\b/parse_symbols/g
s/\bparse_products\b/parse_symbols/g
s/\bparse_pair_list\b/parse_symbols/g
