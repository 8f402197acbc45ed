# pglocks_key computed in Ruby with the standard library only.
#
# Prints "key<TAB>pglocks_key" for each argument, or for the specification's
# vectors when given none.

require 'digest'

SPEC_VECTORS = ['', 'some lock', 'orders:42', 'Grüße', '日本語'].freeze

# The bigint lock that pglocks_acquire(key) takes. 'q>' is a signed 64-bit big-endian.
def pglocks_key(key)
  Digest::SHA256.digest(key.encode(Encoding::UTF_8)).unpack1('q>')
end

keys = ARGV.empty? ? SPEC_VECTORS : ARGV
keys.each { |key| puts "#{key}\t#{pglocks_key(key)}" }
