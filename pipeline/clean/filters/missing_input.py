"""Instructions that point at an input that is not there ("次の文を要約して", "Rewrite the following
sentence" with an empty input and nothing quoted or after a colon): reason ``missing_input``. Text rows and
rows with an input are not judged; the detail names the words that point."""

import re

from pipeline.records import Row
from pipeline.text.instruct import has_inline_payload

NAME = "missing_input"
NEEDS_LANG = False
ORDER = 40

_NOUN = (
    r"(?:文章?|単語|語句?|テキスト|段落|記事|詩|リスト|表|データ|数値?|数字|式|コード|質問|問題|項目|句|フレーズ"
    r"|言葉|情報|例|物語|ストーリー|パッセージ|一節|記述|メール|手紙|レビュー|ツイート|選択肢|オプション|対象"
    r"|オブジェクト|アイテム|もの|ように|ような|通り|内容|入力|名前|製品|商品|映画|本|曲|歌詞|引用|会話|対話"
    r"|エッセイ|三角形|図形|数列|集合|動詞|名詞|形容詞|文書|作品|用語|概念|定義|トピック|テーマ|話題|指示|タスク"
    r"|生物|動物|植物|元素|人物|都市|場所|状況|シナリオ|ニュース|配列|グループ|手順|レシピ|材料|値|2つ|二つ|3つ|三つ"
    r"|出来事|寓話|事件|事例|逸話|エピソード|発言|主張|意見|議論|論文)"
)
POINTING = re.compile(
    r"(?:以下|下記|上記)の|次の(?!日|週|月|年|時|回|ステップ|段階|世代|選挙|大統領|駅|バス|電車|休|人|方|点|ページ|章|瞬間|機会)"
    rf"|(?:次|以下|下記|上記)(?:に示す|に挙げる|に示した|に与えられた|で与えられた)[^。、\n]{{0,6}}?{_NOUN}"
    r"|与えられた|提供された|指定された"
    rf"|(?:この|その|与えられた|提供された|指定された|入力された|所与の)[^。、\n]{{0,4}}?{_NOUN}"
    r"|\b(?:the|these|this) following\b"
    r"|\b(?:this|these|the given|given|provided|the provided|above|below|said|the above|the below|that)\s+"
    r"(?:text|texts|sentence|sentences|passage|paragraph|paragraphs|article|poem|story|statement|list|code|snippet"
    r"|data|dataset|word|words|phrase|email|letter|review|tweet|document|excerpt|quote|table|input|song|lyrics"
    r"|equation|expression|numbers|conversation|dialogue|essay|argument|description|recipe|product|items"
    r"|definition|topic|task|number|set|sequence|characters|movie|book|novel|person|company|situation|scenario"
    r"|event|triangle|trapezoid|shape|formula|function|program|problem|question|claim|concept|term|instructions"
    r"|values|ingredients|name|title|animal|plant|object|item|country|city|news|headline|string|array|example)\b"
    r"|^\s*given (?:a|an|the|two|three|some)\b"
    r"|\b(?:the|this|these) (?:given|provided|specified|aforementioned) [a-z]+"
    r"|\bgiven (?:its|their|his|her)\b"
    r"|\b(?:the|this|these) (?:[a-z]+ ){1,2}(?:below|above)\b"
    r"|\bthe (?:text|sentence|passage|paragraph|article|poem|story|list|code|data|words?|email|document|input)"
    r" (?:below|above|provided|given|here)\b",
    re.IGNORECASE,
)


def check(row: Row, ctx) -> tuple[str, str] | None:
    if "instruction" not in row or row["input"].strip():  # instruction rows only
        return None
    instruction = row["instruction"]
    m = POINTING.search(instruction)
    if m is None or has_inline_payload(instruction):
        return None
    return "missing_input", f"instruction points at {m.group()!r}; input is empty"
