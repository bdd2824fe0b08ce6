using Google.Protobuf;

namespace PrunerZero.Runtime.Tokenization;

/// <summary>
/// The fields of a SentencePiece `ModelProto` (sentencepiece_model.proto) that encoding and decoding use,
/// read with Google.Protobuf's wire reader. Proto2 defaults apply to absent fields, as in sentencepiece.
/// </summary>
internal sealed class SentencePieceModel
{
    public enum PieceType { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 }
    public enum ModelType { Unigram = 1, Bpe = 2, Word = 3, Char = 4 }

    public sealed record Piece(string Text, float Score, PieceType Type);

    public List<Piece> Pieces { get; } = [];
    public ModelType Type { get; private set; } = ModelType.Unigram;
    public bool ByteFallback { get; private set; }
    public bool TreatWhitespaceAsSuffix { get; private set; }
    public string? UnkSurface { get; private set; }
    public int BosId { get; private set; } = 1;
    public int EosId { get; private set; } = 2;
    public string NormalizerName { get; private set; } = "";
    public byte[] PrecompiledCharsmap { get; private set; } = [];
    public bool AddDummyPrefix { get; private set; } = true;
    public bool RemoveExtraWhitespaces { get; private set; } = true;
    public bool EscapeWhitespaces { get; private set; } = true;
    public bool HasDenormalizer { get; private set; }

    /// <summary>Parses a serialized ModelProto; any wire-format error is reported against `path`.</summary>
    public static SentencePieceModel Parse(byte[] data, string path)
    {
        var m = new SentencePieceModel();
        try
        {
            var input = new CodedInputStream(data);
            uint tag;
            while ((tag = input.ReadTag()) != 0)
            {
                int field = WireFormat.GetTagFieldNumber(tag);
                bool bytes = WireFormat.GetTagWireType(tag) == WireFormat.WireType.LengthDelimited;
                switch (field)
                {
                    case 1 when bytes: m.Pieces.Add(ParsePiece(input.ReadBytes())); break;
                    case 2 when bytes: m.ParseTrainerSpec(input.ReadBytes()); break;
                    case 3 when bytes: m.ParseNormalizerSpec(input.ReadBytes()); break;
                    case 4 when bytes: m.HasDenormalizer = DenormalizerHasRules(input.ReadBytes()); break;
                    default: input.SkipLastField(); break;
                }
            }
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new PrunerZeroException($"{path}: not a SentencePiece model ({e.Message})");
        }
        if (m.Pieces.Count == 0) throw new PrunerZeroException($"{path}: not a SentencePiece model (no pieces)");
        return m;
    }

    static Piece ParsePiece(ByteString b)
    {
        var input = b.CreateCodedInput();
        string text = "";
        float score = 0;
        var type = PieceType.Normal;
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            switch (WireFormat.GetTagFieldNumber(tag), WireFormat.GetTagWireType(tag))
            {
                case (1, WireFormat.WireType.LengthDelimited): text = input.ReadString(); break;
                case (2, WireFormat.WireType.Fixed32): score = input.ReadFloat(); break;
                case (3, WireFormat.WireType.Varint): type = (PieceType)input.ReadEnum(); break;
                default: input.SkipLastField(); break;
            }
        }
        return new Piece(text, score, type);
    }

    void ParseTrainerSpec(ByteString b)
    {
        var input = b.CreateCodedInput();
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            var wt = WireFormat.GetTagWireType(tag);
            switch (WireFormat.GetTagFieldNumber(tag))
            {
                case 3 when wt == WireFormat.WireType.Varint: Type = (ModelType)input.ReadEnum(); break;
                case 24 when wt == WireFormat.WireType.Varint: TreatWhitespaceAsSuffix = input.ReadBool(); break;
                case 35 when wt == WireFormat.WireType.Varint: ByteFallback = input.ReadBool(); break;
                case 41 when wt == WireFormat.WireType.Varint: BosId = input.ReadInt32(); break;
                case 42 when wt == WireFormat.WireType.Varint: EosId = input.ReadInt32(); break;
                case 44 when wt == WireFormat.WireType.LengthDelimited: UnkSurface = input.ReadString(); break;
                default: input.SkipLastField(); break;
            }
        }
    }

    void ParseNormalizerSpec(ByteString b)
    {
        var input = b.CreateCodedInput();
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            var wt = WireFormat.GetTagWireType(tag);
            switch (WireFormat.GetTagFieldNumber(tag))
            {
                case 1 when wt == WireFormat.WireType.LengthDelimited: NormalizerName = input.ReadString(); break;
                case 2 when wt == WireFormat.WireType.LengthDelimited: PrecompiledCharsmap = input.ReadBytes().ToByteArray(); break;
                case 3 when wt == WireFormat.WireType.Varint: AddDummyPrefix = input.ReadBool(); break;
                case 4 when wt == WireFormat.WireType.Varint: RemoveExtraWhitespaces = input.ReadBool(); break;
                case 5 when wt == WireFormat.WireType.Varint: EscapeWhitespaces = input.ReadBool(); break;
                default: input.SkipLastField(); break;
            }
        }
    }

    static bool DenormalizerHasRules(ByteString b)
    {
        var input = b.CreateCodedInput();
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            if (WireFormat.GetTagFieldNumber(tag) == 2 && WireFormat.GetTagWireType(tag) == WireFormat.WireType.LengthDelimited)
                return input.ReadBytes().Length > 0;
            input.SkipLastField();
        }
        return false;
    }
}
