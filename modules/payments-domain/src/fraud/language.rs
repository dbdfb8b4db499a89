//! Fraud rules in a small language people read and write:
//!
//! ```text
//! amount > 500.00 EUR and card.country != customer.country
//! count(card, 10m) >= 10 or sum(email, 24h) > 2000.00 EUR
//! email.domain in ("mailinator.com", "guerrillamail.com") and not card in allowlist
//! ip in blocklist or customer.country in ("KP", "IR")
//! ```
//!
//! A rule is parsed once (every mistake said with its line and column) into a
//! [`Condition`], checked for types (a number is not compared with a country), and
//! evaluated against a payment's [`Facts`] and the velocities and list memberships a
//! [`Lookups`] gives. What a condition needs from the database ([`Condition::needs`]) is
//! known before it runs, so a payment's lookups are read once for all rules.

use std::fmt;

/// A payment's attribute a rule can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// Minor units.
    Amount,
    Currency,
    Project,
    Method,
    CardBrand,
    /// The card's first six digits.
    CardBin,
    /// The country that issued the card (by its BIN).
    CardCountry,
    CustomerCountry,
    /// The country of the customer's address.
    IpCountry,
    EmailDomain,
    /// `purchase`, `payout` or `payment_link`.
    Kind,
}

const FIELDS: [(&str, Field); 11] = [
    ("amount", Field::Amount),
    ("currency", Field::Currency),
    ("project", Field::Project),
    ("method", Field::Method),
    ("card.brand", Field::CardBrand),
    ("card.bin", Field::CardBin),
    ("card.country", Field::CardCountry),
    ("customer.country", Field::CustomerCountry),
    ("ip.country", Field::IpCountry),
    ("email.domain", Field::EmailDomain),
    ("kind", Field::Kind),
];

impl Field {
    fn numeric(self) -> bool {
        matches!(self, Field::Amount | Field::Project)
    }
}

/// Whose earlier payments a velocity counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subject {
    Card,
    Email,
    Ip,
}

/// How far back a velocity looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Window {
    TenMinutes,
    Hour,
    Day,
}

impl Window {
    pub fn duration(self) -> chrono::TimeDelta {
        match self {
            Window::TenMinutes => chrono::TimeDelta::minutes(10),
            Window::Hour => chrono::TimeDelta::hours(1),
            Window::Day => chrono::TimeDelta::hours(24),
        }
    }
}

/// What a velocity measures: how many payments, or how much money (in the payment's
/// currency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Measure {
    Count,
    Sum,
}

/// A velocity: `count(card, 10m)`, `sum(email, 24h)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Velocity {
    pub measure: Measure,
    pub subject: Subject,
    pub window: Window,
}

crate::model::text_enum!(
    /// What a list holds: card fingerprints (never numbers), e-mails, addresses and
    /// networks (CIDR), the customer's country, BINs.
    ListKind as "fraud_list_kind" {
        Card => "card" as "Card",
        Email => "email" as "E-mail",
        Ip => "ip" as "IP address",
        Country => "country" as "Country",
        Bin => "bin" as "BIN",
    }
);

crate::model::text_enum!(
    /// The block list or the allow list.
    List as "fraud_list" { Block => "block" as "Block list", Allow => "allow" as "Allow list" }
);

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::{Equal, Greater, Less};
        match self {
            Op::Eq => ordering == Equal,
            Op::Ne => ordering != Equal,
            Op::Lt => ordering == Less,
            Op::Le => ordering != Greater,
            Op::Gt => ordering == Greater,
            Op::Ge => ordering != Less,
        }
    }
}

/// A value a condition compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Field(Field),
    Velocity(Velocity),
    /// A whole number: minor units for an amount or a sum, a count, a project id.
    Number(i64),
    /// `500.00 EUR`: minor units of a currency; an amount or sum in another currency never
    /// matches it.
    Money {
        amount: i64,
        currency: String,
    },
    Text(String),
}

impl Value {
    fn numeric(&self) -> bool {
        match self {
            Value::Field(field) => field.numeric(),
            Value::Velocity(_) | Value::Number(_) | Value::Money { .. } => true,
            Value::Text(_) => false,
        }
    }
}

/// A parsed rule's condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    Compare { left: Value, op: Op, right: Value },
    OneOf { value: Value, set: Vec<Value> },
    Listed { kind: ListKind, list: List },
}

/// Where a rule's text is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Line {}, column {}: {}", self.line, self.column, self.message)
    }
}

/// What a payment is, for the rules.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub amount: i64,
    pub currency: String,
    pub project_id: i64,
    pub method: String,
    pub card_brand: Option<String>,
    pub card_bin: Option<String>,
    pub card_country: Option<String>,
    pub customer_country: Option<String>,
    pub ip_country: Option<String>,
    pub email_domain: Option<String>,
    pub kind: String,
}

impl Facts {
    fn text(&self, field: Field) -> Option<&str> {
        match field {
            Field::Currency => Some(&self.currency),
            Field::Method => Some(&self.method),
            Field::CardBrand => self.card_brand.as_deref(),
            Field::CardBin => self.card_bin.as_deref(),
            Field::CardCountry => self.card_country.as_deref(),
            Field::CustomerCountry => self.customer_country.as_deref(),
            Field::IpCountry => self.ip_country.as_deref(),
            Field::EmailDomain => self.email_domain.as_deref(),
            Field::Kind => Some(&self.kind),
            Field::Amount | Field::Project => None,
        }
    }
}

/// What a rule reads besides the payment: velocities and list memberships, read once per
/// payment for all rules.
pub trait Lookups {
    /// The payments (or their sum in the payment's currency) of the payment's card, e-mail
    /// or address within the window before it; 0 when it has none.
    fn velocity(&self, velocity: Velocity) -> i64;
    /// Whether the payment's card, e-mail, address, country or BIN is on the list.
    fn listed(&self, kind: ListKind, list: List) -> bool;
}

/// What evaluating a condition needs read first.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Needs {
    pub velocities: std::collections::BTreeSet<Velocity>,
    pub lists: std::collections::HashSet<(ListKind, List)>,
}

impl Condition {
    /// Whether the payment matches.
    pub fn matches(&self, facts: &Facts, lookups: &dyn Lookups) -> bool {
        match self {
            Condition::All(parts) => parts.iter().all(|part| part.matches(facts, lookups)),
            Condition::Any(parts) => parts.iter().any(|part| part.matches(facts, lookups)),
            Condition::Not(inner) => !inner.matches(facts, lookups),
            Condition::Compare { left, op, right } => compare(left, *op, right, facts, lookups),
            Condition::OneOf { value, set } => set.iter().any(|item| compare(value, Op::Eq, item, facts, lookups)),
            Condition::Listed { kind, list } => lookups.listed(*kind, *list),
        }
    }

    /// The velocities and lists it reads.
    pub fn needs(&self) -> Needs {
        let mut needs = Needs::default();
        self.collect(&mut needs);
        needs
    }

    fn collect(&self, needs: &mut Needs) {
        let mut value = |value: &Value| {
            if let Value::Velocity(velocity) = value {
                needs.velocities.insert(*velocity);
            }
        };
        match self {
            Condition::All(parts) | Condition::Any(parts) => parts.iter().for_each(|part| part.collect(needs)),
            Condition::Not(inner) => inner.collect(needs),
            Condition::Compare { left, right, .. } => {
                value(left);
                value(right);
            }
            Condition::OneOf { value: v, .. } => value(v),
            Condition::Listed { kind, list } => {
                needs.lists.insert((*kind, *list));
            }
        }
    }
}

/// A number a value stands for in a payment's currency; none where it cannot (money in
/// another currency, an unknown field).
fn number(value: &Value, facts: &Facts, lookups: &dyn Lookups) -> Option<i64> {
    match value {
        Value::Field(Field::Amount) => Some(facts.amount),
        Value::Field(Field::Project) => Some(facts.project_id),
        Value::Velocity(velocity) => Some(lookups.velocity(*velocity)),
        Value::Number(number) => Some(*number),
        Value::Money { amount, currency } => (currency.eq_ignore_ascii_case(&facts.currency)).then_some(*amount),
        Value::Field(_) | Value::Text(_) => None,
    }
}

fn text<'a>(value: &'a Value, facts: &'a Facts) -> Option<&'a str> {
    match value {
        Value::Field(field) => facts.text(*field),
        Value::Text(text) => Some(text),
        _ => None,
    }
}

/// An unknown value (a card without a known country) makes a comparison false, so that
/// "mismatch" means a known mismatch.
fn compare(left: &Value, op: Op, right: &Value, facts: &Facts, lookups: &dyn Lookups) -> bool {
    if left.numeric() {
        match (number(left, facts, lookups), number(right, facts, lookups)) {
            (Some(a), Some(b)) => op.holds(a.cmp(&b)),
            _ => false,
        }
    } else {
        // Text is compared with = or != only (the parser sees to it), in any case.
        match (text(left, facts), text(right, facts)) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b) == (op == Op::Eq),
            _ => false,
        }
    }
}

// ------------------------------------------------------------------------------------
// Parsing

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A name, number, duration or keyword: letters, digits, `_` and `.`.
    Word(String),
    Text(String),
    Op(Op),
    Open,
    Close,
    Comma,
}

#[derive(Debug, Clone)]
struct Located {
    token: Token,
    line: usize,
    column: usize,
}

fn error(line: usize, column: usize, message: impl Into<String>) -> ParseError {
    ParseError { line, column, message: message.into() }
}

fn tokens(text: &str) -> Result<Vec<Located>, ParseError> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let (mut line, mut column) = (1, 1);
    while let Some(&c) = chars.peek() {
        let (at_line, at_column) = (line, column);
        let mut advance = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
            let c = chars.next();
            if c == Some('\n') {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
            c
        };
        let token = match c {
            c if c.is_whitespace() => {
                advance(&mut chars);
                continue;
            }
            '#' => {
                while chars.peek().is_some_and(|&c| c != '\n') {
                    advance(&mut chars);
                }
                continue;
            }
            '(' | ')' | ',' => {
                advance(&mut chars);
                match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    _ => Token::Comma,
                }
            }
            '"' => {
                advance(&mut chars);
                let mut value = String::new();
                loop {
                    match advance(&mut chars) {
                        Some('"') => break,
                        Some(c) => value.push(c),
                        None => return Err(error(at_line, at_column, "This text has no closing quote.")),
                    }
                }
                Token::Text(value)
            }
            '=' | '!' | '<' | '>' => {
                advance(&mut chars);
                let equals = chars.peek() == Some(&'=');
                if equals {
                    advance(&mut chars);
                }
                Token::Op(match (c, equals) {
                    ('=', _) => Op::Eq,
                    ('!', true) => Op::Ne,
                    ('<', false) => Op::Lt,
                    ('<', true) => Op::Le,
                    ('>', false) => Op::Gt,
                    ('>', true) => Op::Ge,
                    _ => return Err(error(at_line, at_column, "`!` must be followed by `=`.")),
                })
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == '.' => {
                let mut word = String::new();
                while chars.peek().is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.') {
                    word.extend(advance(&mut chars));
                }
                Token::Word(word)
            }
            other => return Err(error(at_line, at_column, format!("`{other}` has no meaning here."))),
        };
        out.push(Located { token, line: at_line, column: at_column });
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Located>,
    at: usize,
    /// Where the text ends, for "expected … at the end".
    end: (usize, usize),
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|located| &located.token)
    }

    fn here(&self) -> (usize, usize) {
        self.tokens.get(self.at).map_or(self.end, |located| (located.line, located.column))
    }

    fn fail<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        let (line, column) = self.here();
        Err(error(line, column, message))
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).map(|located| located.token.clone());
        self.at += 1;
        token
    }

    fn keyword(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word)) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, wanted: Token, what: &str) -> Result<(), ParseError> {
        if self.peek() == Some(&wanted) {
            self.at += 1;
            Ok(())
        } else {
            self.fail(format!("Expected {what} here."))
        }
    }

    fn any(&mut self) -> Result<Condition, ParseError> {
        let mut parts = vec![self.all()?];
        while self.keyword("or") {
            parts.push(self.all()?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Condition::Any(parts) })
    }

    fn all(&mut self) -> Result<Condition, ParseError> {
        let mut parts = vec![self.negation()?];
        while self.keyword("and") {
            parts.push(self.negation()?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Condition::All(parts) })
    }

    fn negation(&mut self) -> Result<Condition, ParseError> {
        if self.keyword("not") {
            return Ok(Condition::Not(Box::new(self.negation()?)));
        }
        if self.peek() == Some(&Token::Open) {
            self.at += 1;
            let inner = self.any()?;
            self.expect(Token::Close, "`)`")?;
            return Ok(inner);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Condition, ParseError> {
        // `card in blocklist`, `ip in allowlist`, …: the subject of a list.
        if let Some(Token::Word(word)) = self.peek()
            && let Some(kind) = list_kind(word)
            && matches!(self.tokens.get(self.at + 1).map(|l| &l.token), Some(Token::Word(w)) if w == "in")
            && matches!(self.tokens.get(self.at + 2).map(|l| &l.token), Some(Token::Word(w)) if w.ends_with("list"))
        {
            self.at += 2;
            let list = match self.next() {
                Some(Token::Word(word)) if word == "blocklist" => List::Block,
                Some(Token::Word(word)) if word == "allowlist" => List::Allow,
                _ => {
                    self.at -= 1;
                    return self.fail("Expected `blocklist` or `allowlist`.");
                }
            };
            return Ok(Condition::Listed { kind, list });
        }
        let start = self.here();
        let left = self.value()?;
        if self.keyword("in") {
            self.expect(Token::Open, "`(` and the values")?;
            let mut set = vec![self.value()?];
            while self.peek() == Some(&Token::Comma) {
                self.at += 1;
                set.push(self.value()?);
            }
            self.expect(Token::Close, "`)`")?;
            for item in &set {
                same_kind(&left, item, start)?;
            }
            return Ok(Condition::OneOf { value: left, set });
        }
        let op = match self.next() {
            Some(Token::Op(op)) => op,
            _ => {
                self.at -= 1;
                return self.fail("Expected a comparison (=, !=, <, <=, >, >=) or `in`.");
            }
        };
        let right = self.value()?;
        same_kind(&left, &right, start)?;
        if !left.numeric() && !matches!(op, Op::Eq | Op::Ne) {
            return Err(error(start.0, start.1, "Text is compared with = or != only."));
        }
        Ok(Condition::Compare { left, op, right })
    }

    fn value(&mut self) -> Result<Value, ParseError> {
        match self.next() {
            Some(Token::Text(text)) => Ok(Value::Text(text)),
            Some(Token::Word(word)) => {
                if let Some((_, field)) = FIELDS.iter().find(|(name, _)| name.eq_ignore_ascii_case(&word)) {
                    return Ok(Value::Field(*field));
                }
                if word == "count" || word == "sum" {
                    return self.velocity(if word == "count" { Measure::Count } else { Measure::Sum });
                }
                if word.starts_with(|c: char| c.is_ascii_digit()) {
                    return self.number(&word);
                }
                self.at -= 1;
                let names: Vec<&str> = FIELDS.iter().map(|(name, _)| *name).collect();
                self.fail(format!(
                    "`{word}` is not a field. Fields: {}; velocities: count(card|email|ip, 10m|1h|24h), sum(…); text in \"quotes\".",
                    names.join(", ")
                ))
            }
            _ => {
                self.at = self.at.saturating_sub(1);
                self.fail("Expected a field, a number, a velocity or a text in quotes.")
            }
        }
    }

    /// `1500`, or `15.00 EUR` (minor units of that currency).
    fn number(&mut self, word: &str) -> Result<Value, ParseError> {
        let currency = match self.peek() {
            Some(Token::Word(code))
                if code.len() == 3
                    && code.chars().all(|c| c.is_ascii_alphabetic())
                    && !["and", "not"].contains(&code.to_ascii_lowercase().as_str()) =>
            {
                Some(code.to_ascii_uppercase())
            }
            _ => None,
        };
        match currency {
            None if word.bytes().all(|b| b.is_ascii_digit()) => {
                word.parse().map(Value::Number).or_else(|_| self.fail_before("This number is too large."))
            }
            None => self.fail_before("A decimal amount needs its currency, such as 15.00 EUR (or minor units: 1500)."),
            Some(currency) => {
                if !dashboard_core::money::known(&currency) {
                    return self.fail(format!("`{currency}` is not a supported currency."));
                }
                self.at += 1;
                match dashboard_core::money::parse_amount(word, &currency) {
                    Some(amount) => Ok(Value::Money { amount, currency }),
                    None => self.fail_before(format!("`{word}` is not an amount in {currency}.")),
                }
            }
        }
    }

    /// Fails at the token before the current one (the one just read).
    fn fail_before<T>(&mut self, message: impl Into<String>) -> Result<T, ParseError> {
        self.at = self.at.saturating_sub(1);
        self.fail(message)
    }

    fn velocity(&mut self, measure: Measure) -> Result<Value, ParseError> {
        self.expect(Token::Open, "`(`, as in count(card, 10m)")?;
        let subject = match self.next() {
            Some(Token::Word(word)) if word == "card" => Subject::Card,
            Some(Token::Word(word)) if word == "email" => Subject::Email,
            Some(Token::Word(word)) if word == "ip" => Subject::Ip,
            _ => return self.fail_before("A velocity counts by card, email or ip."),
        };
        self.expect(Token::Comma, "`,` and a window")?;
        let window = match self.next() {
            Some(Token::Word(word)) if word == "10m" => Window::TenMinutes,
            Some(Token::Word(word)) if word == "1h" => Window::Hour,
            Some(Token::Word(word)) if word == "24h" => Window::Day,
            _ => return self.fail_before("A velocity's window is 10m, 1h or 24h."),
        };
        self.expect(Token::Close, "`)`")?;
        Ok(Value::Velocity(Velocity { measure, subject, window }))
    }
}

fn list_kind(word: &str) -> Option<ListKind> {
    match word {
        "card" => Some(ListKind::Card),
        "email" => Some(ListKind::Email),
        "ip" => Some(ListKind::Ip),
        "country" => Some(ListKind::Country),
        "bin" => Some(ListKind::Bin),
        _ => None,
    }
}

/// Refuses comparing a number with a text (`amount = "DE"`).
fn same_kind(left: &Value, right: &Value, (line, column): (usize, usize)) -> Result<(), ParseError> {
    if left.numeric() == right.numeric() {
        Ok(())
    } else {
        Err(error(line, column, "A number is compared with a number, a text with a text."))
    }
}

/// Parses a rule's text.
pub fn parse(text: &str) -> Result<Condition, ParseError> {
    let tokens = tokens(text)?;
    let end = text.lines().enumerate().last().map_or((1, 1), |(i, line)| (i + 1, line.chars().count() + 1));
    if tokens.is_empty() {
        return Err(error(1, 1, "The rule is empty: write a condition, such as amount > 500.00 EUR."));
    }
    let mut parser = Parser { tokens, at: 0, end };
    let condition = parser.any()?;
    if parser.at < parser.tokens.len() {
        return parser.fail("Expected `and`, `or` or the end of the rule here.");
    }
    Ok(condition)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    struct Known {
        card_payments_10m: i64,
        email_sum_24h: i64,
        blocked_ip: bool,
        allowed_card: bool,
    }

    impl Lookups for Known {
        fn velocity(&self, velocity: Velocity) -> i64 {
            match (velocity.measure, velocity.subject, velocity.window) {
                (Measure::Count, Subject::Card, Window::TenMinutes) => self.card_payments_10m,
                (Measure::Sum, Subject::Email, Window::Day) => self.email_sum_24h,
                _ => 0,
            }
        }

        fn listed(&self, kind: ListKind, list: List) -> bool {
            match (kind, list) {
                (ListKind::Ip, List::Block) => self.blocked_ip,
                (ListKind::Card, List::Allow) => self.allowed_card,
                _ => false,
            }
        }
    }

    fn facts() -> Facts {
        Facts {
            amount: 60_000,
            currency: "EUR".to_owned(),
            project_id: 3,
            method: "card".to_owned(),
            card_brand: Some("visa".to_owned()),
            card_bin: Some("424242".to_owned()),
            card_country: Some("US".to_owned()),
            customer_country: Some("DE".to_owned()),
            ip_country: None,
            email_domain: Some("mailinator.com".to_owned()),
            kind: "purchase".to_owned(),
        }
    }

    fn quiet() -> Known {
        Known { card_payments_10m: 0, email_sum_24h: 0, blocked_ip: false, allowed_card: false }
    }

    fn matches(rule: &str, lookups: &Known) -> bool {
        parse(rule).unwrap_or_else(|e| panic!("{rule}: {e}")).matches(&facts(), lookups)
    }

    #[test]
    fn rules_read_the_payment() {
        let lookups = quiet();
        assert!(matches("amount > 500.00 EUR and card.country != customer.country", &lookups));
        assert!(!matches("amount > 500.00 USD", &lookups), "an amount in another currency never matches");
        assert!(matches("amount >= 60000", &lookups), "minor units");
        assert!(matches("email.domain in (\"mailinator.com\", \"guerrillamail.com\")", &lookups));
        assert!(matches("card.brand = \"VISA\" and not currency = \"USD\"", &lookups), "text ignores case");
        assert!(!matches("ip.country != customer.country", &lookups), "an unknown country is no mismatch");
        assert!(matches("(project = 4 or project = 3) and method = \"card\"", &lookups));
        assert!(matches("kind = \"purchase\"", &lookups));
    }

    #[test]
    fn velocities_and_lists_come_from_the_lookups() {
        let busy = Known { card_payments_10m: 10, email_sum_24h: 250_000, blocked_ip: true, allowed_card: true };
        assert!(!matches("count(card, 10m) >= 10", &quiet()));
        assert!(matches("count(card, 10m) >= 10", &busy));
        assert!(matches("sum(email, 24h) > 2000.00 EUR", &busy));
        assert!(matches("ip in blocklist and card in allowlist", &busy));
        let needs = parse("count(card, 10m) > 3 or sum(email, 24h) > 100 and ip in blocklist").unwrap().needs();
        assert_eq!(needs.velocities.len(), 2);
        assert_eq!(needs.lists.into_iter().collect::<Vec<_>>(), [(ListKind::Ip, List::Block)]);
    }

    #[test]
    fn mistakes_are_pointed_at() {
        let at = |rule: &str| parse(rule).map(|_| ()).unwrap_err();
        let mistake = at("amout > 5");
        assert_eq!((mistake.line, mistake.column), (1, 1));
        assert!(mistake.message.contains("`amout` is not a field"), "{mistake}");
        let mistake = at("amount > 5 and\ncustomer.country = 5");
        assert_eq!((mistake.line, mistake.column), (2, 1), "{mistake}");
        assert!(mistake.message.contains("a number"), "{mistake}");
        assert_eq!(at("amount > 12.50").column, 10, "a decimal without its currency");
        assert!(at("count(card, 5m) > 1").message.contains("10m, 1h or 24h"));
        assert!(at("card.country > \"DE\"").message.contains("= or !="));
        assert!(at("amount > 5 amount").message.contains("`and`, `or` or the end"));
        assert!(at("email.domain = \"x").message.contains("closing quote"));
        assert!(at("amount > 5.00 XXX").message.contains("not a supported currency"));
        assert!(at("   ").message.contains("empty"));
        assert!(at("ip in greylist").message.contains("`blocklist` or `allowlist`"));
    }
}
