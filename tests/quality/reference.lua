-- Reference text for the quality benchmark: what a reader sees of a page,
-- rendered by pandoc's MediaWiki reader (an independent renderer).
--
-- Pandoc knows only the English namespace names, so links into the File
-- and Category namespaces under their localized names (which a wiki shows
-- as an image and in the category box, not in its prose) are removed here,
-- with the English ones. Footnotes (<ref>) are not prose either; pandoc
-- would append them to the text.
local hidden = {
  "file", "image", "datei", "bild", "画像", "ファイル", "файл", "изображение",
  "파일", "그림", "文件", "ไฟล์", "category", "kategorie", "カテゴリ",
  "категория", "분류", "分类", "หมวดหมู่",
}

local function is_hidden(target)
  local prefix = target:match("^([^:]+):")
  if not prefix then
    return false
  end
  prefix = pandoc.text.lower(prefix)
  for _, name in ipairs(hidden) do
    if prefix == name then
      return true
    end
  end
  return false
end

function Note(el)
  return {}
end

function Image(el)
  return {}
end

function Link(el)
  if is_hidden(el.target) then
    return {}
  end
end
