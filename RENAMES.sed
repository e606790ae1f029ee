# h16-src-b: renamed public names in dccd_core/sources/{kraken,coinbase,bitfinex,bitmex}
# apply: find tests bench -name "*.py" -exec sed -i -E -f RENAMES.sed {} +
s/\bbitmex\.source\b/bitmex.rest/g
