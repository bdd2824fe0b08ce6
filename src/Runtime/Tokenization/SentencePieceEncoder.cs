using System.Text;

namespace PrunerZero.Runtime.Tokenization;

/// <summary>
/// A SentencePiece model (`tokenizer.model`) encoded and decoded as sentencepiece's C++ library does
/// (sentencepiece_processor.cc, normalizer.cc, bpe_model.cc, unigram_model.cc's optimized Viterbi), written
/// here because Microsoft.ML.Tokenizers' LlamaTokenizer breaks BPE ties differently and drops some inputs:
/// - normalization: <see cref="SentencePieceNormalizer"/> (the model's charsmap, whitespace options, dummy prefix);
/// - BPE: symbols are user-defined symbols (frozen) or single characters; the pair whose merged piece has the
///   highest score merges first, equal scores leftmost first; UNUSED pieces are split back into their parts;
/// - Unigram: Viterbi over the vocabulary trie, user-defined symbols with their bonus, unknown characters at
///   min score - 10;
/// - unknown pieces become UTF-8 byte pieces with byte_fallback, otherwise one &lt;unk&gt; per run of them.
/// Text is UTF-8 first: a lone UTF-16 surrogate becomes U+FFFD (Encoding.UTF8), as Python would need it to be.
/// WORD and CHAR models, and models with a denormalizer, are refused.
/// </summary>
public sealed class SentencePieceEncoder
{
    const string Space = "\u2581";
    const float UnkPenalty = 10.0f;

    readonly SentencePieceModel _m;
    readonly SentencePieceModel.Piece[] _pieces;
    readonly Dictionary<string, int> _vocab = new(StringComparer.Ordinal);     // NORMAL, USER_DEFINED, UNUSED
    readonly Dictionary<string, int> _reserved = new(StringComparer.Ordinal);  // CONTROL, UNKNOWN, BYTE
    readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _vocabSpan, _reservedSpan;
    readonly string[] _userDefined;   // by length, longest first
    readonly int _unkId;
    readonly int[] _byteIds = new int[256];
    readonly SentencePieceNormalizer _normalizer;
    readonly CharTrie? _trie;         // Unigram only
    readonly float _minScore = float.MaxValue, _maxScore = 1.17549435E-38f;   // FLT_MAX and FLT_MIN, as the C++ code starts them
    readonly int[] _utf8Length;

    public bool IsBpe => _m.Type == SentencePieceModel.ModelType.Bpe;
    public int VocabSize => _pieces.Length;

    SentencePieceEncoder(SentencePieceModel m, string path)
    {
        _m = m;
        _pieces = [.. m.Pieces];
        if (m.Type is not (SentencePieceModel.ModelType.Bpe or SentencePieceModel.ModelType.Unigram))
            throw new PrunerZeroException($"{path}: SentencePiece model type {m.Type.ToString().ToUpperInvariant()} is not supported (BPE and UNIGRAM are)");
        if (m.HasDenormalizer)
            throw new PrunerZeroException($"{path}: SentencePiece models with a denormalizer are not supported");
        _unkId = -1;
        Array.Fill(_byteIds, -1);
        _utf8Length = new int[_pieces.Length];
        for (int i = 0; i < _pieces.Length; i++)
        {
            var p = _pieces[i];
            if (p.Text.Length == 0) throw new PrunerZeroException($"{path}: piece {i} is empty");
            _utf8Length[i] = Encoding.UTF8.GetByteCount(p.Text);
            bool normal = p.Type is SentencePieceModel.PieceType.Normal or SentencePieceModel.PieceType.UserDefined or SentencePieceModel.PieceType.Unused;
            if (!(normal ? _vocab : _reserved).TryAdd(p.Text, i))
                throw new PrunerZeroException($"{path}: piece '{p.Text}' is defined twice");
            switch (p.Type)
            {
                case SentencePieceModel.PieceType.Unknown:
                    if (_unkId >= 0) throw new PrunerZeroException($"{path}: two unknown pieces ({_pieces[_unkId].Text}, {p.Text})");
                    _unkId = i;
                    break;
                case SentencePieceModel.PieceType.Byte:
                    if (!m.ByteFallback) throw new PrunerZeroException($"{path}: byte piece {p.Text} but byte_fallback is off");
                    int b = ByteOf(p.Text);
                    if (b < 0) throw new PrunerZeroException($"{path}: byte piece '{p.Text}' is not <0xXX>");
                    _byteIds[b] = i;
                    break;
                case SentencePieceModel.PieceType.Normal:
                    _minScore = Math.Min(_minScore, p.Score);
                    _maxScore = Math.Max(_maxScore, p.Score);
                    break;
            }
        }
        if (_unkId < 0) throw new PrunerZeroException($"{path}: the SentencePiece model has no unknown piece");
        if (m.ByteFallback && _byteIds.Contains(-1))
            throw new PrunerZeroException($"{path}: byte_fallback is on but not all 256 byte pieces are defined");
        _vocabSpan = _vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        _reservedSpan = _reserved.GetAlternateLookup<ReadOnlySpan<char>>();
        var user = _pieces.Where(p => p.Type == SentencePieceModel.PieceType.UserDefined).Select(p => p.Text).ToList();
        _userDefined = [.. user.OrderByDescending(s => s.Length)];
        _normalizer = new SentencePieceNormalizer(m, new BytePrefixMatcher(user), path);
        if (!IsBpe)
        {
            _trie = new CharTrie();
            foreach (var (text, id) in _vocab) _trie.Add(text, id);
        }
    }

    /// <summary>Reads a `.model` file; anything that is not a SentencePiece model is one PrunerZeroException naming the file.</summary>
    public static SentencePieceEncoder Load(string path)
    {
        byte[] data;
        try { data = PathSafety.ReadAllBytesBounded(path, "tokenizer file", PathSafety.MaxJsonBytes); }
        catch (IOException e) { throw new PrunerZeroException($"{path}: cannot read ({e.Message})"); }
        return new SentencePieceEncoder(SentencePieceModel.Parse(data, path), path);
    }

    static int ByteOf(string piece) =>
        piece.Length == 6 && piece.StartsWith("<0x") && piece[5] == '>'
        && int.TryParse(piece.AsSpan(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out int b) ? b : -1;

    /// <summary>The id of a piece (any type), null if the model has no such piece.</summary>
    public int? PieceId(string piece) => _reserved.TryGetValue(piece, out int r) ? r : _vocab.TryGetValue(piece, out int v) ? v : null;

    public string IdToPiece(int id) => _pieces[id].Text;

    /// <summary>The model's bos_id / eos_id when they name a control piece, as SentencePieceProcessor::bos_id does.</summary>
    public int? BosId => IsControl(_m.BosId) ? _m.BosId : null;
    public int? EosId => IsControl(_m.EosId) ? _m.EosId : null;

    bool IsControl(int id) => id >= 0 && id < _pieces.Length && _pieces[id].Type == SentencePieceModel.PieceType.Control;

    /// <summary>ModelInterface::PieceToId: reserved pieces first, then the vocabulary, else the unknown id.</summary>
    int PieceToId(ReadOnlySpan<char> piece) =>
        _reservedSpan.TryGetValue(piece, out int r) ? r : _vocabSpan.TryGetValue(piece, out int v) ? v : _unkId;

    /// <summary>SentencePieceProcessor::Encode to ids (no BOS/EOS).</summary>
    public int[] Encode(string text)
    {
        byte[] normalized = _normalizer.Normalize(Encoding.UTF8.GetBytes(text));
        if (normalized.Length == 0) return [];
        string s = Encoding.UTF8.GetString(normalized);
        var pieces = IsBpe ? EncodeBpe(s) : EncodeUnigram(s);
        // PopulateSentencePieceText: unknown pieces become bytes (byte_fallback) or merge into one <unk> per run.
        var ids = new List<int>(pieces.Count + 16);
        bool prevUnk = false;
        foreach (var (start, length, id) in pieces)
        {
            bool unk = _pieces[id].Type == SentencePieceModel.PieceType.Unknown;
            if (unk && _m.ByteFallback)
                foreach (byte b in Encoding.UTF8.GetBytes(s.Substring(start, length))) ids.Add(_byteIds[b]);
            else if (!(unk && prevUnk)) ids.Add(id);
            prevUnk = unk;
        }
        return [.. ids];
    }

    /// <summary>Length of the user-defined symbol at `pos` (0 if none).</summary>
    int UserDefinedAt(string s, int pos)
    {
        foreach (var u in _userDefined)
            if (pos + u.Length <= s.Length && string.CompareOrdinal(s, pos, u, 0, u.Length) == 0) return u.Length;
        return 0;
    }

    static int CharLen(string s, int pos) => char.IsHighSurrogate(s[pos]) && pos + 1 < s.Length && char.IsLowSurrogate(s[pos + 1]) ? 2 : 1;

    /// <summary>bpe_model.cc's Model::Encode on the normalized text: (start, length, id) per piece in UTF-16 units.</summary>
    List<(int Start, int Length, int Id)> EncodeBpe(string s)
    {
        // Initial symbols: user-defined symbols (frozen) or one character each.
        var start = new List<int>(s.Length);
        var len = new List<int>(s.Length);
        var freeze = new List<bool>(s.Length);
        for (int pos = 0; pos < s.Length;)
        {
            int u = _userDefined.Length > 0 ? UserDefinedAt(s, pos) : 0;
            int l = u > 0 ? u : CharLen(s, pos);
            start.Add(pos); len.Add(l); freeze.Add(u > 0);
            pos += l;
        }
        int n = start.Count;
        var st = start.ToArray();
        var ln = len.ToArray();
        var fr = freeze.ToArray();
        var prev = new int[n];
        var next = new int[n];
        for (int i = 0; i < n; i++) { prev[i] = i - 1; next[i] = i + 1 < n ? i + 1 : -1; }

        // The agenda: highest score first, equal scores leftmost first (SymbolPairComparator).
        var agenda = new PriorityQueue<(int Left, int Right, int Size), (float Score, int Left)>(n, AgendaOrder.Instance);
        Dictionary<string, (string, string)>? revMerge = null;
        void MaybeAdd(int left, int right)
        {
            if (left == -1 || right == -1 || fr[left] || fr[right]) return;
            var piece = s.AsSpan(st[left], ln[left] + ln[right]);
            if (!_vocabSpan.TryGetValue(piece, out int id)) return;
            agenda.Enqueue((left, right, piece.Length), (_pieces[id].Score, left));
            if (_pieces[id].Type == SentencePieceModel.PieceType.Unused)
                (revMerge ??= [])[piece.ToString()] = (s.Substring(st[left], ln[left]), s.Substring(st[right], ln[right]));
        }
        for (int i = 1; i < n; i++) MaybeAdd(i - 1, i);
        while (agenda.TryDequeue(out var top, out _))
        {
            // Stale: one side was merged away or grew since the pair was queued.
            if (ln[top.Left] == 0 || ln[top.Right] == 0 || ln[top.Left] + ln[top.Right] != top.Size) continue;
            ln[top.Left] += ln[top.Right];
            next[top.Left] = next[top.Right];
            if (next[top.Right] >= 0) prev[next[top.Right]] = top.Left;
            ln[top.Right] = 0;
            MaybeAdd(prev[top.Left], top.Left);
            MaybeAdd(top.Left, next[top.Left]);
        }

        var output = new List<(int, int, int)>();
        void Resegment(int at, string w)
        {
            int id = PieceToId(w);
            if (_pieces[id].Type != SentencePieceModel.PieceType.Unused || revMerge is null || !revMerge.TryGetValue(w, out var parts))
            {
                output.Add((at, w.Length, id));
                return;
            }
            Resegment(at, parts.Item1);
            Resegment(at + parts.Item1.Length, parts.Item2);
        }
        for (int i = 0; i != -1; i = next[i])
        {
            var w = s.AsSpan(st[i], ln[i]);
            int id = PieceToId(w);
            if (_pieces[id].Type == SentencePieceModel.PieceType.Unused) Resegment(st[i], w.ToString());
            else output.Add((st[i], ln[i], id));
        }
        return output;
    }

    sealed class AgendaOrder : IComparer<(float Score, int Left)>
    {
        public static readonly AgendaOrder Instance = new();
        public int Compare((float Score, int Left) a, (float Score, int Left) b) =>
            a.Score != b.Score ? b.Score.CompareTo(a.Score) : a.Left.CompareTo(b.Left);
    }

    /// <summary>unigram_model.cc's EncodeOptimized: Viterbi over the pieces, in float as the C++ code computes it.</summary>
    List<(int Start, int Length, int Id)> EncodeUnigram(string s)
    {
        int size = s.Length;
        float unkScore = _minScore - UnkPenalty;
        var bestScore = new float[size + 1];
        var startsAt = new int[size + 1];
        var bestId = new int[size + 1];
        Array.Fill(startsAt, -1);
        for (int from = 0; from < size;)
        {
            float till = bestScore[from];
            int charLen = CharLen(s, from);
            bool hasSingle = false;
            var node = _trie!.Root;
            for (int k = from; k < size; k++)
            {
                if (!node.Next.TryGetValue(s[k], out node!)) break;
                int id = node.Id;
                if (id < 0) continue;
                var p = _pieces[id];
                if (p.Type == SentencePieceModel.PieceType.Unused) continue;
                int end = k + 1, length = end - from;
                // `IsUserDefined ? length * max_score_ - 0.1 : score` is a double in the C++ code (the ternary's
                // common type), so the candidate is summed and compared in double, then stored as float.
                double c = (p.Type == SentencePieceModel.PieceType.UserDefined ? (double)(_utf8Length[id] * _maxScore) - 0.1 : p.Score) + till;
                bool better = startsAt[end] == -1 || c > bestScore[end];
                float candidate = (float)c;
                if (better) { bestScore[end] = candidate; startsAt[end] = from; bestId[end] = id; }
                if (!hasSingle && length == charLen) hasSingle = true;
            }
            if (!hasSingle)
            {
                int end = from + charLen;
                float candidate = unkScore + till;
                if (startsAt[end] == -1 || candidate > bestScore[end]) { bestScore[end] = candidate; startsAt[end] = from; bestId[end] = _unkId; }
            }
            from += charLen;
        }
        var results = new List<(int, int, int)>();
        for (int end = size; end > 0; end = startsAt[end]) results.Add((startsAt[end], end - startsAt[end], bestId[end]));
        results.Reverse();
        return results;
    }

    /// <summary>SentencePieceProcessor::Decode of ids: control pieces vanish, &lt;unk&gt; is its surface, byte runs are
    /// UTF-8 (a malformed byte is U+FFFD), U+2581 is a space and the first piece's leading one goes with the dummy prefix.</summary>
    public string Decode(IEnumerable<int> ids)
    {
        var text = new StringBuilder();
        var bytes = new List<byte>();
        bool isBosWs = true, bosWsSeen = false;
        void FlushBytes()
        {
            var span = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes);
            for (int off = 0; off < span.Length;)
            {
                if (Utf8Util.IsValidChar(span[off..], out int n)) text.Append(Encoding.UTF8.GetString(span.Slice(off, n)));
                else text.Append('\uFFFD');
                off += n;
            }
            bytes.Clear();
        }
        foreach (int id in ids)
        {
            if (id < 0 || id >= _pieces.Length) throw new PrunerZeroException($"token id {id} is outside the vocabulary (0..{_pieces.Length - 1})");
            var p = _pieces[id];
            if (p.Type == SentencePieceModel.PieceType.Byte) { bytes.Add((byte)ByteOf(p.Text)); continue; }
            FlushBytes();
            if (bosWsSeen || text.Length > 0) isBosWs = false;
            string piece = p.Text;
            bosWsSeen = false;
            if (p.Type == SentencePieceModel.PieceType.Control) continue;
            if (p.Type == SentencePieceModel.PieceType.Unknown) { text.Append(_m.UnkSurface ?? " \u2047 "); continue; }
            if (isBosWs && (_m.AddDummyPrefix || _m.RemoveExtraWhitespaces))
            {
                if (piece.StartsWith(Space, StringComparison.Ordinal)) { piece = piece[1..]; bosWsSeen = true; }
                if (_m.RemoveExtraWhitespaces) bosWsSeen = false;
            }
            text.Append(piece.Replace(Space, " "));
        }
        FlushBytes();
        return text.ToString();
    }

    /// <summary>The vocabulary trie over UTF-16 units, as the darts trie of unigram_model.cc over bytes.</summary>
    sealed class CharTrie
    {
        public sealed class Node
        {
            public readonly Dictionary<char, Node> Next = [];
            public int Id = -1;
        }
        public readonly Node Root = new();

        public void Add(string key, int id)
        {
            var n = Root;
            foreach (char c in key)
            {
                if (!n.Next.TryGetValue(c, out var child)) n.Next[c] = child = new Node();
                n = child;
            }
            n.Id = id;
        }
    }
}
