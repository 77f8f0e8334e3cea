# cmake -DIN=file -DOUT=file.c -DSYMBOL=name -P EmbedFile.cmake
# Writes a C file defining `const unsigned char SYMBOL[]` with IN's bytes and
# `const size_t SYMBOL_len`. Used for image/build-customize.sh, which the
# library writes into each build's temp dir.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "((0x..,){16})" "\\1\n  " body "${body}")
get_filename_component(name "${IN}" NAME)
file(WRITE "${OUT}.tmp" "/* Generated from ${name} by cmake/EmbedFile.cmake: do not edit. */\n#include <stddef.h>\n\nextern const unsigned char ${SYMBOL}[];\nextern const size_t ${SYMBOL}_len;\nconst unsigned char ${SYMBOL}[] = {\n  ${body}};\nconst size_t ${SYMBOL}_len = ${len};\n")
file(RENAME "${OUT}.tmp" "${OUT}")
