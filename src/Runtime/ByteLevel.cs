namespace PrunerZero.Runtime;

/// <summary>
/// GPT-2's byte-to-unicode table, which Hugging Face byte-level BPE vocabularies are written in: printable
/// bytes stand for themselves, the others are shifted to code points from 256 up (space becomes 'Ġ').
/// </summary>
public static class ByteLevel
{
    /// <summary>GPT-2's pre-tokenizer pattern (tokenizers' ByteLevel with use_regex), which the BPE trainer splits words with.</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    public static readonly char[] ByteToChar = Build();

    static char[] Build()
    {
        var map = new char[256];
        var direct = new bool[256];
        for (int b = '!'; b <= '~'; b++) direct[b] = true;
        for (int b = 0xA1; b <= 0xAC; b++) direct[b] = true;
        for (int b = 0xAE; b <= 0xFF; b++) direct[b] = true;
        int n = 0;
        for (int b = 0; b < 256; b++) map[b] = direct[b] ? (char)b : (char)(256 + n++);
        return map;
    }

    public static string Encode(ReadOnlySpan<byte> bytes)
    {
        var chars = new char[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) chars[i] = ByteToChar[bytes[i]];
        return new string(chars);
    }
}
