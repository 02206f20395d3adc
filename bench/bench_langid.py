#!/usr/bin/env python3
"""Language identifiers whose model ships inside the wheel: py3langid vs lingua, accuracy and speed.

Usage (from the repository root):

    .venv/bin/python bench/bench_langid.py [--english 2000]

Labelled sample: English responses from ../shared/data (GSM8K answers and T0 completions, the
kind of text `curate filter` sees; label en), plus a small hand-written set of sentences in
eight other languages below (written for this benchmark, 10 per language). Short texts
(under 10 words) are left out, as the filter skips them. Reports accuracy per label and
documents per second over the whole sample (one process, measured under load).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

OTHER = {
    "de": ["Der Zug nach Berlin hatte heute Morgen fast eine Stunde Verspätung wegen eines Signalfehlers.",
           "Wir haben am Wochenende einen langen Spaziergang durch den Wald gemacht und Pilze gesammelt.",
           "Die Regierung plant, die Steuern für kleine Unternehmen im nächsten Jahr zu senken.",
           "Kannst du mir bitte erklären, wie man diese Gleichung Schritt für Schritt löst?",
           "Meine Großmutter backt jeden Sonntag einen Apfelkuchen für die ganze Familie.",
           "Das Museum ist montags geschlossen, aber am Dienstag kann man es kostenlos besuchen.",
           "Nach dem Regen war die Luft frisch und die Straßen glänzten im Licht der Laternen.",
           "Die Antwort ist zwölf, weil drei mal vier zwölf ergibt und nichts weiter addiert wird.",
           "Er hat sein Studium abgebrochen und arbeitet jetzt als Schreiner in einer kleinen Werkstatt.",
           "Bitte schreiben Sie eine kurze Zusammenfassung des Artikels in höchstens drei Sätzen."],
    "fr": ["Le train pour Lyon est parti avec vingt minutes de retard à cause de la neige.",
           "Nous avons passé nos vacances dans un petit village au bord de la mer en Bretagne.",
           "Pouvez-vous m'expliquer pourquoi le ciel est bleu pendant la journée et rouge le soir ?",
           "La réponse est quinze, car il faut additionner les deux nombres avant de multiplier.",
           "Ma sœur travaille dans un hôpital et elle rentre souvent très tard le soir.",
           "Le gouvernement a annoncé de nouvelles mesures pour réduire la pollution dans les villes.",
           "Il faut mélanger la farine et les œufs avant d'ajouter le lait petit à petit.",
           "Les enfants jouaient dans le jardin pendant que les parents préparaient le dîner.",
           "Ce livre raconte l'histoire d'un marin qui cherche à rentrer chez lui après la guerre.",
           "Écrivez un court poème sur l'automne en utilisant au moins trois couleurs."],
    "es": ["El tren a Madrid salió con media hora de retraso por culpa de la tormenta.",
           "Ayer fuimos al mercado a comprar frutas y verduras frescas para toda la semana.",
           "¿Puedes explicarme cómo funciona la fotosíntesis en las plantas de manera sencilla?",
           "La respuesta es veinte, porque cinco por cuatro es veinte y no hay que sumar nada más.",
           "Mi hermano estudia medicina en la universidad y quiere ser cirujano algún día.",
           "El museo estará cerrado durante el verano por obras de renovación en la sala principal.",
           "Después de la cena salimos a pasear por la playa mientras se ponía el sol.",
           "El gobierno aprobó una nueva ley para proteger los bosques del norte del país.",
           "Escribe un resumen breve del capítulo en no más de cinco frases, por favor.",
           "Los niños aprendieron a contar hasta cien con canciones y juegos en la escuela."],
    "it": ["Il treno per Roma è partito con quaranta minuti di ritardo a causa di un guasto.",
           "Abbiamo passato il fine settimana in montagna camminando tra i boschi e i laghi.",
           "Puoi spiegarmi perché le foglie cambiano colore in autunno prima di cadere?",
           "La risposta è nove, perché bisogna sottrarre tre da dodici e non fare altro.",
           "Mia nonna prepara la pasta fatta in casa ogni domenica per tutta la famiglia.",
           "Il comune ha deciso di chiudere il centro storico alle auto durante il fine settimana.",
           "Dopo la pioggia le strade erano bagnate e l'aria profumava di terra e di erba.",
           "Scrivi una breve lettera a un amico per invitarlo alla tua festa di compleanno.",
           "Il libro racconta la storia di una ragazza che diventa medico in un piccolo paese.",
           "Gli studenti hanno presentato i loro progetti davanti a tutta la scuola."],
    "pt": ["O comboio para Lisboa partiu com meia hora de atraso por causa da chuva forte.",
           "Passámos as férias numa pequena aldeia perto do mar e comemos peixe todos os dias.",
           "Podes explicar-me como se calcula a área de um círculo com um exemplo simples?",
           "A resposta é oito, porque metade de dezasseis é oito e não é preciso somar mais nada.",
           "A minha irmã trabalha num banco e quer mudar de emprego no próximo ano.",
           "O governo anunciou novas regras para reduzir o consumo de água durante o verão.",
           "Depois do jantar fomos dar um passeio pela praia enquanto o sol se punha.",
           "Escreve um pequeno resumo do texto em não mais de quatro frases, por favor.",
           "As crianças aprenderam a ler com histórias e canções na escola primária.",
           "O museu fica fechado às segundas-feiras mas abre cedo aos fins de semana."],
    "nl": ["De trein naar Amsterdam vertrok vanochtend met een half uur vertraging door een storing.",
           "We hebben het weekend doorgebracht aan de kust en lange wandelingen gemaakt.",
           "Kun je mij uitleggen hoe een regenboog ontstaat na een flinke regenbui?",
           "Het antwoord is zes, omdat je twaalf door twee moet delen en verder niets hoeft te doen.",
           "Mijn broer werkt in een ziekenhuis en komt vaak pas laat in de avond thuis.",
           "De gemeente wil het centrum autovrij maken om de luchtkwaliteit te verbeteren.",
           "Na het eten gingen we fietsen langs de rivier tot het donker werd.",
           "Schrijf een korte samenvatting van het artikel in hooguit drie zinnen.",
           "De kinderen leerden tellen tot honderd met liedjes en spelletjes op school.",
           "Het museum is op maandag gesloten maar op zondag gratis te bezoeken."],
    "ru": ["Поезд в Москву отправился с опозданием на полчаса из-за сильного снегопада.",
           "Мы провели выходные на даче, собирали грибы и пили чай на веранде.",
           "Можешь объяснить, почему небо голубое днём и красное на закате?",
           "Ответ равен десяти, потому что пять умножить на два будет десять.",
           "Моя сестра работает в больнице и часто возвращается домой поздно вечером.",
           "Правительство объявило о новых мерах по снижению загрязнения воздуха в городах.",
           "После дождя улицы блестели в свете фонарей, а воздух был свежим.",
           "Напиши короткое письмо другу и пригласи его на свой день рождения.",
           "Эта книга рассказывает о моряке, который пытается вернуться домой после войны.",
           "Дети научились считать до ста с помощью песен и игр в школе."],
    "zh": ["今天早上去北京的火车因为大雪晚点了半个小时，很多乘客都在站台上等待。",
           "我们周末去了海边的小村子，每天都吃新鲜的鱼，还在沙滩上散步。",
           "你能简单地解释一下为什么白天的天空是蓝色的，而傍晚是红色的吗？",
           "答案是十二，因为三乘以四等于十二，不需要再加别的数。",
           "我的姐姐在医院工作，经常很晚才回家，但她很喜欢自己的工作。",
           "政府宣布了新的措施，以减少城市中的空气污染并保护环境。",
           "下雨以后，街道在路灯下闪闪发光，空气也变得非常清新。",
           "请用不超过三句话写一段这篇文章的简短摘要。",
           "这本书讲述了一个水手在战争结束后努力回家的故事。",
           "孩子们在学校里通过唱歌和做游戏学会了从一数到一百。"],
}


def english(n: int) -> list[str]:
    texts = [row["output"] for row in json.loads((SHARED / "gsm8k_train_alpaca.json").read_text())[: n // 2]]
    with gzip.open(SHARED / "t0_prompt_completion.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            if len(texts) >= n:
                break
            completion = json.loads(line)["completion"].replace("<|endoftext|>", "").strip()
            texts.append(json.loads(line)["prompt"][-400:] + " " + completion)
    return [t for t in texts if len(t.split()) >= 10]


def make_py3langid():
    import py3langid

    return lambda texts: [py3langid.classify(t)[0] for t in texts]


def make_lingua():
    from lingua import LanguageDetectorBuilder

    detector = LanguageDetectorBuilder.from_all_languages().build()
    return lambda texts: [(r.iso_code_639_1.name.lower() if r else "??") for r in
                          detector.detect_languages_in_parallel_of(texts)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--english", type=int, default=2000)
    args = ap.parse_args()
    sample = [(t, "en") for t in english(args.english)] + [(t, lang) for lang, ts in OTHER.items() for t in ts]
    texts = [t for t, _ in sample]
    print(json.dumps({"rows": len(sample), "load_at_start": os.getloadavg()}))
    for name, make in (("py3langid", make_py3langid), ("lingua (all languages)", make_lingua)):
        start = time.perf_counter()
        classify = make()
        loaded = time.perf_counter() - start
        start = time.perf_counter()
        predicted = classify(texts)
        seconds = time.perf_counter() - start
        by_label: dict[str, list[int]] = {}
        for (_, label), guess in zip(sample, predicted, strict=True):
            by_label.setdefault(label, [0, 0])
            by_label[label][0] += guess == label
            by_label[label][1] += 1
        correct = sum(c for c, _ in by_label.values())
        print(json.dumps({"tool": name, "accuracy": round(correct / len(sample), 4),
                          "en_accuracy": round(by_label["en"][0] / by_label["en"][1], 4),
                          "other_accuracy": round(sum(c for k, (c, _) in by_label.items() if k != "en")
                                                  / sum(n for k, (_, n) in by_label.items() if k != "en"), 4),
                          "load_s": round(loaded, 2), "docs_per_s": round(len(sample) / seconds, 1),
                          "load": os.getloadavg()}))


if __name__ == "__main__":
    main()
