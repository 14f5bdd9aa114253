//! Train the topic model shipped in `model/topic-en.bin`.
//!
//! Usage (run by `scripts/train-topic-model.sh`, which fetches the data):
//! ```text
//! cargo run --release -p weir-plugin-score --example train -- \
//!     summaries_en-us.json model/topic-en.bin > model/REPORT.md
//! ```
//!
//! Data: a JSON object mapping titles to `{title, extract, topic}` (lead
//! paragraphs of Wikipedia's Level-4 vital articles). Rows labelled
//! `Uncategorized` are dropped. One article in five (chosen by a hash of its
//! title, so the split is reproducible) is held out for evaluation and never
//! trained on.
//!
//! Model: multinomial logistic regression over the plugin's own hashed
//! features (`features::extract`), trained with Adagrad, then quantised to
//! int8. The reported accuracy is measured through `Model::predict` on the
//! quantised model: exactly what the plugin runs.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use weir_plugin_score::features::{FNV_OFFSET, Features, extract, fnv1a};
use weir_plugin_score::model::{Model, softmax};
use weir_plugin_score::{Config, classifier_input};

const BUCKETS: u32 = 1 << 15;
const BIGRAMS: bool = true;
const EPOCHS: usize = 30;
const LEARNING_RATE: f32 = 0.5;
const L2: f32 = 1e-6;
const SEED: u64 = 0x5eed_7091c;

#[derive(Deserialize)]
struct Article {
    title: String,
    extract: String,
    topic: String,
}

struct Example {
    features: Features,
    label: usize,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, data, out] = args.as_slice() else {
        eprintln!("usage: train <summaries_en-us.json> <model.bin>");
        std::process::exit(2);
    };
    let articles: BTreeMap<String, Article> =
        serde_json::from_slice(&std::fs::read(data).expect("read the data"))
            .expect("parse the data");
    let articles: Vec<Article> = articles
        .into_values()
        .filter(|a| a.topic != "Uncategorized" && !a.extract.trim().is_empty())
        .collect();
    let labels: Vec<String> = {
        let mut l: Vec<String> = articles.iter().map(|a| a.topic.clone()).collect();
        l.sort();
        l.dedup();
        l
    };
    let index: HashMap<&str, usize> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    // The plugin reads at most this much of a lead; training sees the same.
    let max_lead_chars = Config::default().max_input_chars;
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for article in &articles {
        let example = Example {
            features: extract(
                &classifier_input(&article.title, &article.extract, max_lead_chars),
                BUCKETS,
                BIGRAMS,
            ),
            label: index[article.topic.as_str()],
        };
        if held_out(&article.title) {
            test.push(example);
        } else {
            train.push(example);
        }
    }

    let (weights, bias) = fit(&train, labels.len());
    let model = quantise(&weights, bias, labels.clone());
    let float_accuracy = accuracy(&test, |f| {
        predict_float(&weights, &model.bias, f, labels.len())
    });
    let bytes = model.to_bytes();
    let model = Model::parse(&bytes).expect("the written model parses");
    std::fs::write(out, &bytes).expect("write the model");
    report(&articles, &labels, &train, &test, &model, float_accuracy);
}

/// One article in five, by a hash of the title, is held out.
fn held_out(title: &str) -> bool {
    fnv1a(title.bytes(), FNV_OFFSET).is_multiple_of(5)
}

/// Multinomial logistic regression with Adagrad and L2.
fn fit(train: &[Example], classes: usize) -> (Vec<f32>, Vec<f32>) {
    let mut weights = vec![0.0f32; BUCKETS as usize * classes];
    let mut bias = vec![0.0f32; classes];
    let mut g_weights = vec![1e-8f32; weights.len()];
    let mut g_bias = vec![1e-8f32; classes];
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut rng = SEED;
    for _ in 0..EPOCHS {
        shuffle(&mut order, &mut rng);
        for &i in &order {
            let example = &train[i];
            let p = predict_float(&weights, &bias, &example.features, classes);
            for k in 0..classes {
                let grad = p[k] - f32::from(u8::from(k == example.label));
                g_bias[k] += grad * grad;
                bias[k] -= LEARNING_RATE * grad / g_bias[k].sqrt();
                for &(bucket, value) in &example.features {
                    let at = bucket as usize * classes + k;
                    let g = grad * value + L2 * weights[at];
                    g_weights[at] += g * g;
                    weights[at] -= LEARNING_RATE * g / g_weights[at].sqrt();
                }
            }
        }
    }
    (weights, bias)
}

fn predict_float(weights: &[f32], bias: &[f32], features: &Features, classes: usize) -> Vec<f32> {
    let mut logits = bias.to_vec();
    for &(bucket, value) in features {
        for (k, logit) in logits.iter_mut().enumerate() {
            *logit += value * weights[bucket as usize * classes + k];
        }
    }
    softmax(&logits)
}

/// int8 weights with one scale per class.
fn quantise(weights: &[f32], bias: Vec<f32>, labels: Vec<String>) -> Model {
    let classes = labels.len();
    let scale: Vec<f32> = (0..classes)
        .map(|k| {
            let max = weights
                .iter()
                .skip(k)
                .step_by(classes)
                .fold(0.0f32, |m, w| m.max(w.abs()));
            (max / 127.0).max(f32::MIN_POSITIVE)
        })
        .collect();
    let quantised = weights
        .iter()
        .enumerate()
        .map(|(i, w)| (w / scale[i % classes]).round().clamp(-127.0, 127.0) as i8)
        .collect();
    Model {
        labels,
        buckets: BUCKETS,
        bigrams: BIGRAMS,
        bias,
        scale,
        weights: quantised,
    }
}

fn shuffle(order: &mut [usize], state: &mut u64) {
    for i in (1..order.len()).rev() {
        // xorshift64*: a fixed, dependency-free generator for a reproducible order.
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        let r = state.wrapping_mul(0x2545_f491_4f6c_dd1d);
        order.swap(i, (r % (i as u64 + 1)) as usize);
    }
}

fn argmax(p: &[f32]) -> usize {
    p.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

fn accuracy(examples: &[Example], predict: impl Fn(&Features) -> Vec<f32>) -> f64 {
    let correct = examples
        .iter()
        .filter(|e| argmax(&predict(&e.features)) == e.label)
        .count();
    correct as f64 / examples.len() as f64
}

fn report(
    articles: &[Article],
    labels: &[String],
    train: &[Example],
    test: &[Example],
    model: &Model,
    float_accuracy: f64,
) {
    let classes = labels.len();
    let mut confusion = vec![vec![0usize; classes]; classes];
    let mut top2 = 0;
    for example in test {
        let p = model.predict(&example.features);
        let predicted = argmax(&p);
        confusion[example.label][predicted] += 1;
        let mut ranked: Vec<usize> = (0..classes).collect();
        ranked.sort_by(|a, b| p[*b].total_cmp(&p[*a]));
        top2 += usize::from(ranked[..2].contains(&example.label));
    }
    let correct: usize = (0..classes).map(|k| confusion[k][k]).sum();
    println!("# topic-en model: training report\n");
    println!(
        "Data: {} labelled articles ({} train, {} held out), {} classes. Buckets: {}, bigrams: {}, epochs: {}.\n",
        articles.len(),
        train.len(),
        test.len(),
        classes,
        BUCKETS,
        BIGRAMS,
        EPOCHS
    );
    println!("| held-out metric | value |\n|---|---:|");
    println!(
        "| accuracy (int8 model, as shipped) | {:.1}% |",
        100.0 * correct as f64 / test.len() as f64
    );
    println!(
        "| accuracy (float weights, before quantisation) | {:.1}% |",
        100.0 * float_accuracy
    );
    println!(
        "| top-2 accuracy (int8) | {:.1}% |",
        100.0 * top2 as f64 / test.len() as f64
    );
    let mut f1_sum = 0.0;
    let mut rows = Vec::new();
    for k in 0..classes {
        let tp = confusion[k][k] as f64;
        let predicted: usize = (0..classes).map(|j| confusion[j][k]).sum();
        let actual: usize = confusion[k].iter().sum();
        let precision = tp / (predicted.max(1) as f64);
        let recall = tp / (actual.max(1) as f64);
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        f1_sum += f1;
        rows.push(format!(
            "| {} | {} | {:.2} | {:.2} | {:.2} |",
            labels[k], actual, precision, recall, f1
        ));
    }
    println!("| macro F1 (int8) | {:.3} |\n", f1_sum / classes as f64);
    println!("| class | held-out articles | precision | recall | F1 |\n|---|---:|---:|---:|---:|");
    for row in rows {
        println!("{row}");
    }
}
