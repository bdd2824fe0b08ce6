using System.Buffers.Binary;
using System.Text;

namespace PrunerZero.Runtime.Tokenization;

/// <summary>
/// sentencepiece's Normalizer (normalizer.cc) on UTF-8 bytes: the model's precompiled_charsmap (a darts-clone
/// double-array trie of rules plus a blob of NUL-terminated replacements; empty for `identity`), user-defined
/// symbols copied untouched, heading / repeated / trailing spaces removed when remove_extra_whitespaces,
/// the dummy prefix, and ' ' escaped to U+2581. The normalizer's name only chooses the charsmap at training
/// time, so applying the charsmap reproduces every built-in rule set (nmt_nfkc, nfkc, *_cf, identity).
/// </summary>
internal sealed class SentencePieceNormalizer
{
    static readonly byte[] SpaceSymbol = [0xE2, 0x96, 0x81];
    static readonly byte[] Replacement = [0xEF, 0xBF, 0xBD];

    readonly uint[]? _trie;
    readonly byte[] _normalized = [];
    readonly BytePrefixMatcher _userDefined;
    readonly bool _addDummyPrefix, _removeExtraWhitespaces, _escapeWhitespaces, _suffix;

    public SentencePieceNormalizer(SentencePieceModel m, BytePrefixMatcher userDefined, string path)
    {
        _userDefined = userDefined;
        _addDummyPrefix = m.AddDummyPrefix;
        _removeExtraWhitespaces = m.RemoveExtraWhitespaces;
        _escapeWhitespaces = m.EscapeWhitespaces;
        _suffix = m.TreatWhitespaceAsSuffix;
        var blob = m.PrecompiledCharsmap;
        if (blob.Length == 0) return;
        // <trie size (4 bytes, little-endian)><double array><normalized strings>
        if (blob.Length <= 4) throw new PrunerZeroException($"{path}: the normalizer's precompiled_charsmap is broken");
        uint trieSize = BinaryPrimitives.ReadUInt32LittleEndian(blob);
        if (trieSize >= blob.Length || trieSize % 4 != 0 || trieSize + 4 > blob.Length)
            throw new PrunerZeroException($"{path}: the normalizer's precompiled_charsmap is broken (trie size {trieSize})");
        _trie = new uint[trieSize / 4];
        for (int i = 0; i < _trie.Length; i++) _trie[i] = BinaryPrimitives.ReadUInt32LittleEndian(blob.AsSpan(4 + 4 * i));
        _normalized = blob[(int)(4 + trieSize)..];
    }

    /// <summary>Darts-clone's commonPrefixSearch, keeping only the longest hit: (length, value), length 0 if none.</summary>
    (int Length, int Value) LongestRule(ReadOnlySpan<byte> key)
    {
        var a = _trie!;
        int longest = 0, value = 0;
        uint nodePos = 0;
        uint unit = a[0];
        nodePos ^= Offset(unit);
        for (int i = 0; i < key.Length; i++)
        {
            nodePos ^= key[i];
            if (nodePos >= a.Length) return (longest, value);
            unit = a[nodePos];
            if ((unit & ((1u << 31) | 0xFF)) != key[i]) return (longest, value);
            nodePos ^= Offset(unit);
            if (((unit >> 8) & 1) == 1)
            {
                if (nodePos >= a.Length) return (longest, value);
                // commonPrefixSearch reports prefixes shortest first; the normalizer keeps the longest.
                longest = i + 1;
                value = (int)(a[nodePos] & ((1u << 31) - 1));
            }
        }
        return (longest, value);

        static uint Offset(uint u) => (u >> 10) << (int)((u & (1u << 9)) >> 6);
    }

    /// <summary>NormalizePrefix: the replacement of the longest rule at the start of `input` and the bytes it consumes.</summary>
    ReadOnlySpan<byte> NormalizePrefix(ReadOnlySpan<byte> input, out int consumed)
    {
        int user = _userDefined.Match(input);
        if (user > 0) { consumed = user; return input[..user]; }
        if (_trie is not null)
        {
            var (length, value) = LongestRule(input);
            if (length > 0)
            {
                consumed = length;
                if (value >= _normalized.Length) return [];
                var rest = _normalized.AsSpan(value);
                int nul = rest.IndexOf((byte)0);
                return nul < 0 ? rest : rest[..nul];
            }
        }
        if (!Utf8Util.IsValidChar(input, out int len)) { consumed = 1; return Replacement; }
        consumed = len;
        return input[..len];
    }

    /// <summary>The normalized text (UTF-8) of one input.</summary>
    public byte[] Normalize(ReadOnlySpan<byte> input)
    {
        if (input.IsEmpty) return [];
        if (_removeExtraWhitespaces)
            while (!input.IsEmpty)
            {
                var p = NormalizePrefix(input, out int n);
                if (!(p.Length == 1 && p[0] == (byte)' ')) break;
                input = input[n..];
            }
        if (input.IsEmpty) return [];

        var output = new List<byte>(input.Length * 3 / 2 + 4);
        void AddWs()
        {
            if (_escapeWhitespaces) output.AddRange(SpaceSymbol);
            else output.Add((byte)' ');
        }
        if (!_suffix && _addDummyPrefix) AddWs();
        bool isPrevSpace = _removeExtraWhitespaces;
        while (!input.IsEmpty)
        {
            var sp = NormalizePrefix(input, out int n);
            while (isPrevSpace && sp.Length > 0 && sp[0] == (byte)' ') sp = sp[1..];
            if (!sp.IsEmpty)
            {
                foreach (byte b in sp)
                    if (_escapeWhitespaces && b == (byte)' ') output.AddRange(SpaceSymbol);
                    else output.Add(b);
                isPrevSpace = sp[^1] == (byte)' ';
            }
            input = input[n..];
            if (!_removeExtraWhitespaces) isPrevSpace = false;
        }
        if (_removeExtraWhitespaces)
        {
            ReadOnlySpan<byte> space = _escapeWhitespaces ? SpaceSymbol : " "u8;
            while (output.Count >= space.Length && EndsWith(output, space)) output.RemoveRange(output.Count - space.Length, space.Length);
        }
        if (_suffix && _addDummyPrefix) AddWs();
        return [.. output];

        static bool EndsWith(List<byte> o, ReadOnlySpan<byte> s)
        {
            for (int i = 0; i < s.Length; i++) if (o[o.Count - s.Length + i] != s[i]) return false;
            return true;
        }
    }
}

/// <summary>Longest match among a set of byte strings (sentencepiece's PrefixMatcher of user-defined symbols).</summary>
internal sealed class BytePrefixMatcher
{
    readonly Dictionary<byte, byte[][]> _byFirst;

    public BytePrefixMatcher(IEnumerable<string> symbols) =>
        _byFirst = symbols.Where(s => s.Length > 0).Distinct().Select(s => Encoding.UTF8.GetBytes(s))
            .GroupBy(b => b[0]).ToDictionary(g => g.Key, g => g.OrderByDescending(b => b.Length).ToArray());

    public bool IsEmpty => _byFirst.Count == 0;

    /// <summary>Length in bytes of the longest symbol `input` starts with; 0 if none.</summary>
    public int Match(ReadOnlySpan<byte> input)
    {
        if (input.IsEmpty || !_byFirst.TryGetValue(input[0], out var candidates)) return 0;
        foreach (var c in candidates) if (input.StartsWith(c)) return c.Length;
        return 0;
    }
}

/// <summary>sentencepiece's UTF-8 helpers (util.cc): one character's length and validity.</summary>
internal static class Utf8Util
{
    /// <summary>string_util::OneCharLen: the length the lead byte announces (1 for stray continuation bytes).</summary>
    public static int OneCharLen(byte lead) => "\x1\x1\x1\x1\x1\x1\x1\x1\x1\x1\x1\x1\x2\x2\x3\x4"[lead >> 4];

    /// <summary>string_util::IsValidDecodeUTF8: whether the input starts with a well-formed character, and its length (1 if not).</summary>
    public static bool IsValidChar(ReadOnlySpan<byte> s, out int length)
    {
        length = 1;
        if (s.IsEmpty) return false;
        byte b0 = s[0];
        if (b0 < 0x80) return true;
        static bool Trail(byte b) => (b & 0xC0) == 0x80;
        static bool Valid(int c) => c < 0xD800 || (c >= 0xE000 && c <= 0x10FFFF);
        if (s.Length >= 2 && (b0 & 0xE0) == 0xC0)
        {
            int c = ((b0 & 0x1F) << 6) | (s[1] & 0x3F);
            if (Trail(s[1]) && c >= 0x80 && Valid(c)) { length = 2; return true; }
        }
        else if (s.Length >= 3 && (b0 & 0xF0) == 0xE0)
        {
            int c = ((b0 & 0x0F) << 12) | ((s[1] & 0x3F) << 6) | (s[2] & 0x3F);
            if (Trail(s[1]) && Trail(s[2]) && c >= 0x800 && Valid(c)) { length = 3; return true; }
        }
        else if (s.Length >= 4 && (b0 & 0xF8) == 0xF0)
        {
            int c = ((b0 & 0x07) << 18) | ((s[1] & 0x3F) << 12) | ((s[2] & 0x3F) << 6) | (s[3] & 0x3F);
            if (Trail(s[1]) && Trail(s[2]) && Trail(s[3]) && c >= 0x10000 && Valid(c)) { length = 4; return true; }
        }
        return false;
    }
}
