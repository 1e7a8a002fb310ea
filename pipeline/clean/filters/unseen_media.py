"""Instructions about media or links the model cannot see or make: a photo, image, chart, video,
recording, attachment or web page ("写真にある以下の感情をラベルに", "Describe this image", a URL to
summarise), or a request to draw or render one ("ロゴをデザインしてください", "Generate an image of ...").
AlpacaDataCleaned removed these: their answers are made up. Reason ``unseen_media``; detail: the words."""

import re

from pipeline.records import Row

NAME = "unseen_media"
NEEDS_LANG = False
ORDER = 39  # before missing_input: a photo that is not there is the stronger reason

_JA_MEDIA = r"(?:画像|写真|イラスト|図|絵|動画|ビデオ|映像|音声|録音|グラフ|チャート|図表|スクリーンショット)"
_JA_LINK = r"(?:リンク|URL|ウェブサイト|ウェブページ|サイト|ページ|ファイル|PDF)"
_EN_MEDIA = (
    r"(?:image|photo|photograph|picture|pic|chart|graph|diagram|figure|illustration|video|clip|audio|recording"
    r"|podcast|screenshot|drawing|painting|map)"
)
_EN_LINK = r"(?:link|url|web ?page|website|site|file|attachment|pdf)"
SEEING = re.compile(
    rf"(?:この|その|次の|以下の|上の|下の|上記の|添付の|添付された|与えられた|提供された|示された|掲載の)"
    rf"[^。、\n]{{0,8}}?(?:{_JA_MEDIA}|{_JA_LINK})"
    rf"|{_JA_MEDIA}(?:に写|に描|に示|にある|の中の|の中に|内の|から読み取|を見て|を参照|を聞いて|を説明|を描写|を分析|を要約)"
    r"|添付(?:ファイル|した|された|の)"
    rf"|\b(?:this|that|these|those|the following|following|attached|given|provided|above|below|accompanying"
    rf"|included|linked|shown)\s+{_EN_MEDIA}s?\b"
    rf"|\b(?:this|that|the following|following|attached|given|provided|above|below|linked)\s+{_EN_LINK}s?\b"
    rf"|\bthe {_EN_MEDIA}s? (?:below|above|provided|attached|shown)\b"
    r"|\b(?:look at|watch|listen to|view|see) (?:the|this) \w+\b(?<=image|photo|video|audio|chart|graph)",
    re.IGNORECASE,
)
MAKING = re.compile(
    r"(?:画像|写真|イラスト|絵|ロゴ|図|図表|グラフ|動画|アイコン)を(?:生成|作成|描|デザイン|作って|作りなさい|撮)"
    r"[^。\n]{0,6}?(?:して|しなさい|せよ|しよう|する|ください|いて|け|きなさい)?[。.!！]?\s*$"
    r"|\b(?:generate|create|draw|design|make|produce|paint|sketch|render|construct|build|take)\b[^.?!\n]{0,30}?"
    r"\b(?:an? |the )?(?:image|photo|photograph|picture|chart|graph|diagram|illustration|video|audio|recording"
    r"|podcast|drawing|painting|logo|icon|meme|gif|animation|infographic|storyboard|flowchart)s?\b",
    re.IGNORECASE,
)
SHORT_INPUT = 300  # a URL inside a longer input (a paper body, an article) is material, not the task
URL = re.compile(r"https?://\S+|www\.\S+")
ABOUT_PAGE = re.compile(
    r"記事|ページ|サイト|内容|要約|読ん|閲覧|見て|動画|article|page|site|content|summar|read|visit|watch|video|post",
    re.IGNORECASE,
)


def check(row: Row, ctx) -> tuple[str, str] | None:
    if "instruction" not in row:  # instruction rows only
        return None
    instruction, inp = row["instruction"], row["input"]
    m = SEEING.search(instruction)
    if m:
        return "unseen_media", f"instruction refers to {m.group()!r}"
    m = MAKING.search(instruction)
    if m:
        return "unseen_media", f"instruction asks to make {m.group()!r}"
    url = URL.search(instruction) or (len(inp) <= SHORT_INPUT and URL.search(inp))
    if url and ABOUT_PAGE.search(instruction):
        return "unseen_media", f"instruction asks about the page at {url.group()!r}"
    return None
